"""Property-based tests: the YAML schema, --set parsing and the image readers never crash
with anything but a clear msaug error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from msaug.errors import ConfigError, DataError, MsaugError
from msaug.io import read_image, read_label_array
from msaug.pipeline.config import load_pipeline, parse_set
from tests.conftest import CLASSIC

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(allow_nan=True), st.text(max_size=12))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)), max_leaves=8)
keys = st.sampled_from(["name", "data", "data.size", "data.split.train", "stages", "stages.0.params", "stages.0.use",
                        "generate.count", "generate.batch_size", "evaluate", "profiles", "seed", "data.count", "extra"])

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.dictionaries(keys, values, max_size=4))
def test_mutated_pipelines_fail_only_with_config_errors(tmp_path_factory, mutations):
    tmp = tmp_path_factory.mktemp("fuzz")
    data = yaml.safe_load(yaml.safe_dump(CLASSIC))
    for dotted, value in mutations.items():
        node, parts = data, dotted.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    break  # this mutation no longer applies to the mutated document
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                break
        else:
            if isinstance(node, dict):
                node[parts[-1]] = value
    path = tmp / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        config = load_pipeline(path, profile="none").config
    except ConfigError as exc:
        assert "p.yaml" in str(exc), exc
        return
    assert config.data.size >= 8 and config.generate.count >= 0


@FUZZ
@given(st.text(max_size=40))
def test_set_parsing_never_crashes(expr):
    try:
        key, _ = parse_set(expr)
    except ConfigError as exc:
        assert "--set" in str(exc)
        return
    assert key and all(key.split("."))


@FUZZ
@given(st.text(min_size=1, max_size=200))
def test_arbitrary_yaml_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        config = load_pipeline(path, profile="none")
        # a random text is never a valid pipeline, but if it were it would have stages
        assert not config.stages


def _valid_png() -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray((np.arange(256, dtype=np.uint8).reshape(16, 16))).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(st.data())
def test_image_readers_on_damaged_files(tmp_path_factory, data):
    blob = bytearray(_valid_png())
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = Path(tmp_path_factory.mktemp("img")) / "x.png"
    path.write_bytes(bytes(blob))
    for reader in (read_image, read_label_array):
        try:
            out = reader(path)
        except DataError as exc:
            assert str(path) in str(exc)
            continue
        assert isinstance(out, np.ndarray) and out.size > 0


@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "JPEG", "BMP"])
def test_truncated_files_of_each_format(tmp_path, fmt):
    buf = io.BytesIO()
    PILImage.fromarray(np.zeros((64, 64), np.uint8) + 100).save(buf, format=fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    with pytest.raises(MsaugError, match="x\\." + fmt.lower()):
        read_image(path)
