"""YAML loading: key-path errors with line numbers, profiles, --set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from msaug.errors import ConfigError
from msaug.pipeline.config import load_pipeline, parse_set, set_argument
from tests.conftest import CLASSIC


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_path_line_and_valid_keys(tmp_path):
    path = write(tmp_path, "name: x\ndata:\n  dataset: folder\n  sise: 64\nstages:\n  - use: core.lab2im\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, profile="none")
    msg = str(err.value)
    assert f"{path}:4: data.sise: unknown key." in msg
    assert "Valid keys:" in msg and "size" in msg and "split" in msg


def test_wrong_type_and_absurd_values(tmp_path):
    path = write(tmp_path, "name: x\ndata:\n  dataset: folder\n  size: 1000000\nstages:\n  - use: a\ngenerate:\n  count: -5\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, profile="none")
    msg = str(err.value)
    assert f"{path}:4: data.size: Input should be less than or equal to 8192 (got 1000000)" in msg
    assert f"{path}:8: generate.count: Input should be greater than or equal to 0 (got -5)" in msg


def test_missing_required_key(tmp_path):
    path = write(tmp_path, "name: x\nstages:\n  - use: a\n")
    with pytest.raises(ConfigError, match=r"p.yaml:1: data: required key is missing"):
        load_pipeline(path, profile="none")


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "name: x\ndata: {dataset: folder\nstages: []\n")
    with pytest.raises(ConfigError, match=r"p.yaml:\d+: YAML syntax error"):
        load_pipeline(path)


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="YAML syntax error|could not determine a constructor"):
        load_pipeline(path)


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_pipeline(write(tmp_path, "- a\n- b\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_pipeline(tmp_path / "nope.yaml")


def test_profile_selection_and_sets(tmp_path, monkeypatch):
    path = write(tmp_path, yaml.safe_dump(CLASSIC))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    r = load_pipeline(path)
    assert r.profile == "quick" and r.config.generate.count == 6
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    r = load_pipeline(path)
    assert r.profile == "full" and r.config.data.size == 64 and r.config.generate.count == 10
    r = load_pipeline(path, profile="none", sets=["data.size=48", "stages.real_labels.params.size=8", "stages.2.budget.steps=5"])
    assert r.profile is None and r.config.data.size == 48
    assert r.config.stages[0].params == {"size": 8}
    assert r.config.stages[2].budget.steps == 5
    # --set wins over the profile
    r = load_pipeline(path, profile="quick", sets=["generate.count=3"])
    assert r.config.generate.count == 3


def test_undefined_profile_lists_valid(tmp_path):
    path = write(tmp_path, yaml.safe_dump(CLASSIC))
    with pytest.raises(ConfigError, match="profile 'fast' is not defined. Valid profiles: full, quick"):
        load_pipeline(path, profile="fast")


def test_set_errors(tmp_path):
    path = write(tmp_path, yaml.safe_dump(CLASSIC))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_pipeline(path, sets=["data.size"])
    with pytest.raises(ConfigError, match="no stage named 'imag'; stages are: real_labels, label_resize, lab2im"):
        load_pipeline(path, sets=["stages.imag.params.size=3"])
    with pytest.raises(ConfigError, match="stage index 7 is out of range"):
        load_pipeline(path, sets=["stages.7.params.size=3"])
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, sets=["data.sise=3"])
    assert "data.sise (set by --set data.sise=3): unknown key" in str(err.value)


def test_relative_root_resolves_against_yaml_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "p.yaml"
    path.write_text(yaml.safe_dump(CLASSIC))
    monkeypatch.chdir(tmp_path)
    r = load_pipeline(path, profile="none")
    assert r.config.data.root == (tmp_path / "sub" / "data").resolve()
    r = load_pipeline(path, profile="none", sets=["data.root=elsewhere"])
    assert r.config.data.root == (tmp_path / "elsewhere").resolve()  # --set paths are relative to the shell


@pytest.mark.parametrize(
    ("expr", "key", "value"),
    [("a.b=3", "a.b", 3), ("a=0.5", "a", 0.5), ("x=true", "x", True), ("x=[1, 2]", "x", [1, 2]), ("x=hello", "x", "hello"), ("x=a=b", "x", "a=b")],
)
def test_parse_set_values(expr, key, value):
    assert parse_set(expr) == (key, value)


def test_structured_overrides_land_in_the_config_by_the_same_path_as_set(tmp_path):
    path = write(tmp_path, yaml.safe_dump(CLASSIC))
    overrides = {"data.size": 48, "stages.real_labels.params.size": 8, "stages.2.budget.steps": None, "stages.2.budget.seconds": 12.5,
                 "data.split.seed": 4, "generate.count": 3}
    r = load_pipeline(path, profile="quick", overrides=overrides)  # overrides win over the profile, like --set
    assert r.config.data.size == 48 and r.config.stages[0].params == {"size": 8} and r.config.generate.count == 3
    assert r.config.stages[2].budget.steps is None and r.config.stages[2].budget.seconds == 12.5 and r.config.data.split.seed == 4
    # listed as --set arguments, which give the same config on a command line (how compare hands them to its child run)
    assert r.sets == ["data.size=48", "stages.real_labels.params.size=8", "stages.2.budget.steps=null", "stages.2.budget.seconds=12.5",
                      "data.split.seed=4", "generate.count=3"]
    assert load_pipeline(path, profile="quick", sets=r.sets).config == r.config
    # --set strings come first, the mapping after them
    r = load_pipeline(path, profile="none", sets=["generate.count=5", "seed=2"], overrides={"generate.count": 7})
    assert r.config.generate.count == 7 and r.config.seed == 2 and r.sets == ["generate.count=5", "seed=2", "generate.count=7"]


def test_a_bad_structured_override_is_a_config_error_naming_the_key(tmp_path):
    path = write(tmp_path, yaml.safe_dump(CLASSIC))
    # overrides given in Python are named as such (not as a --set the user never typed)
    with pytest.raises(ConfigError, match=r"data.sizee \(set by overrides \{'data.sizee': 5\}\): unknown key. Valid keys: .*size"):
        load_pipeline(path, profile="none", overrides={"data.sizee": 5})
    with pytest.raises(ConfigError, match="stages.nosuch.budget.steps: no stage named 'nosuch'; stages are: real_labels, "):
        load_pipeline(path, profile="none", overrides={"stages.nosuch.budget.steps": 1})
    with pytest.raises(ConfigError, match=r"generate.count \(set by overrides \{'generate.count': 'many'\}\): Input should be a valid integer"):
        load_pipeline(path, profile="none", overrides={"generate.count": "many"})
    with pytest.raises(ConfigError, match="overrides 'data..size': the key must be a dotted path like data.size"):
        load_pipeline(path, profile="none", overrides={"data..size": 1})
    with pytest.raises(ConfigError, match="override data.root: <object object at .*> is not a YAML value"):
        set_argument("data.root", object())


@pytest.mark.parametrize("value", [3, 0.5, 45.0, 1e-05, None, True, "hello", "5", "", "null", "a b: c", "/tmp/x y", Path("/tmp/x y"), [1, "two"], {"a": [1]}])
def test_set_argument_reads_back_as_the_same_value(value):
    key, parsed = parse_set(set_argument("stages.image.params.x", value))
    expected = str(value) if isinstance(value, Path) else value  # a path is written as its text
    assert key == "stages.image.params.x" and parsed == expected and type(parsed) is type(expected)
