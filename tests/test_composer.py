"""The composer accepts chains that connect and rejects, before any work, those that don't."""

from __future__ import annotations

import pytest
import yaml

from msaug.errors import CompositionError, ConfigError
from msaug.pipeline.runner import prepare
from tests.conftest import CLASSIC


def pipeline(tmp_path, stages, **data):
    cfg = {**CLASSIC, "stages": stages, "profiles": {}}
    cfg["data"] = {**CLASSIC["data"], **data}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_valid_chain(tmp_path, shapes_dir):
    prepared = prepare(pipeline(tmp_path, CLASSIC["stages"]))
    chain = prepared.chain
    assert [cs.use for cs in chain.stages] == ["core.real_labels", "core.label_resize", "core.lab2im"]
    assert str(chain.image) == "Image(1 ch, 32 px)"
    assert str(chain.label) == "Label(3 classes, 32 px, index)"
    assert chain.inputs == [None, (0, 0), (1, 0)]


def test_size_mismatch_names_both_modalities(tmp_path, shapes_dir):
    stages = [{"use": "core.real_labels", "params": {"size": 16}}, {"use": "core.lab2im"}]
    with pytest.raises(CompositionError) as err:
        prepare(pipeline(tmp_path, stages))
    assert str(err.value) == (
        "stage 2 'core.lab2im' expects Label(3 classes, 32 px, index) "
        "but stage 1 'core.real_labels' produced Label(3 classes, 16 px, index)"
    )


def test_first_stage_must_start_from_noise(tmp_path, shapes_dir):
    with pytest.raises(CompositionError, match="stage 1 'core.lab2im' expects Label\\(3 classes, 32 px, index\\), but the first stage must start from noise"):
        prepare(pipeline(tmp_path, [{"use": "core.lab2im"}]))


def test_noise_stage_in_the_middle(tmp_path, shapes_dir):
    stages = [{"use": "core.real_labels"}, {"use": "core.real_labels", "name": "again"}]
    with pytest.raises(CompositionError, match="stage 2 'core.real_labels' \\(again\\) starts from Noise\\(1\\) but follows stage 1"):
        prepare(pipeline(tmp_path, stages))


def test_chain_without_image(tmp_path, shapes_dir):
    with pytest.raises(CompositionError, match="the chain produces no Image"):
        prepare(pipeline(tmp_path, [{"use": "core.real_labels"}]))


def test_unknown_stage_and_bad_params(tmp_path, shapes_dir):
    path = pipeline(tmp_path, [{"use": "core.real_label"}])
    with pytest.raises(ConfigError) as err:
        prepare(path)
    assert "p.yaml:16: stages[0].use: unknown stage 'core.real_label'. Did you mean 'core.real_labels'?" in str(err.value)
    path = pipeline(tmp_path, [{"use": "core.real_labels", "params": {"sise": 3}}])
    with pytest.raises(ConfigError) as err:
        prepare(path)
    assert "stages[0].params.sise: unknown key. Valid keys: elastic, rotation, scale, size, translate." in str(err.value)
    path = pipeline(tmp_path, [{"use": "core.real_labels", "params": {"rotation": -1}}])
    with pytest.raises(ConfigError, match=r"stages\[0\].params.rotation: Input should be greater than or equal to 0"):
        prepare(path)


def test_unknown_dataset(tmp_path):
    path = pipeline(tmp_path, CLASSIC["stages"], dataset="foldr")
    with pytest.raises(ConfigError, match="data.dataset: unknown dataset 'foldr'. Did you mean 'folder'?"):
        prepare(path)


def test_duplicate_stage_names(tmp_path, shapes_dir):
    stages = [{"use": "core.real_labels"}, {"use": "core.real_labels"}]
    with pytest.raises(ConfigError, match="share the name 'real_labels'; give one a 'name:'"):
        prepare(pipeline(tmp_path, stages))
