"""DRIVE's official split (training 21-40 / test 01-20) through ``data.split: official``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from fundus_fixtures import write_drive

from msaug import ConfigError, DataConfig, load_dataset
from msaug.cli import cli
from msaug.data import split_dataset
from msaug.pipeline.runner import RunState, prepare, resolved_yaml, split_data

CHAIN = [
    {"use": "core.real_labels", "params": {"size": 16}},
    {"use": "core.label_resize", "params": {"in_size": 16}},
    {"use": "core.lab2im"},
]


def drive_pipeline(tmp_path: Path, root: str, split, **data) -> Path:
    path = tmp_path / "drive.yaml"
    path.write_text(yaml.safe_dump({
        "name": "drive", "stages": CHAIN, "generate": {"count": 2},
        "data": {"dataset": "fundus.drive", "root": root, "size": 32, "split": split, **data},
    }))
    return path


@pytest.mark.parametrize("split", ["official", {"by": "official"}], ids=["shorthand", "mapping"])
def test_drive_official_split_is_training_for_train_and_test_for_test(tmp_path, split):
    write_drive(tmp_path / "DRIVE")
    prepared = prepare(drive_pipeline(tmp_path, str(tmp_path / "DRIVE"), split), profile="none")
    ids = [prepared.dataset[i].id for i in range(len(prepared.dataset))]
    assert [ids[i] for i in prepared.split.train] == ["drive-training-21", "drive-training-22"]
    assert [ids[i] for i in prepared.split.test] == ["drive-test-01", "drive-test-02"]
    out = tmp_path / "run"
    out.mkdir()
    state = RunState(out, torch.device("cpu"))
    split_data(prepared, state)
    record = json.loads((out / "split.json").read_text())
    assert record["by"] == "official" and record["test"] == ["drive-test-01", "drive-test-02"]
    assert state.test.native(0).id == "drive-test-01"
    resolved = out / "pipeline.resolved.yaml"  # what --resume and msaug generate read back
    resolved.write_text(resolved_yaml(prepared))
    assert prepare(resolved, profile="none").split == prepared.split


def test_drive_official_split_needs_both_subsets(tmp_path):
    write_drive(tmp_path / "DRIVE")
    path = drive_pipeline(tmp_path, str(tmp_path / "DRIVE"), "official", options={"subset": "training"})
    result = CliRunner().invoke(cli, ["pipeline", "check", str(path), "--profile", "none"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.split())
    assert "data.split: official: DRIVE's official split is training (21-40) / test (01-20), but only the training subset is loaded; set data.options.subset=all" in text
    config = DataConfig(dataset="fundus.drive", root=tmp_path / "DRIVE", size=20, split="official", options={"subset": "test"})
    with pytest.raises(ConfigError, match="only the test subset is loaded"):
        split_dataset(load_dataset(config), config)


def test_other_fundus_loaders_have_no_official_split(tmp_path):
    from fundus_fixtures import H, W, binary, photo, save, vessels

    for key in ("01L", "01R"):
        save(tmp_path / f"Image_{key}.jpg", photo(H, W, 1))
        save(tmp_path / f"Image_{key}_1stHO.png", binary(vessels(H, W, 1)))
    config = DataConfig(dataset="fundus.chase_db1", root=tmp_path, size=20, split="official")
    with pytest.raises(ConfigError, match="dataset 'fundus.chase_db1' has no official split; valid split forms"):
        split_dataset(load_dataset(config), config)


def test_datasets_list_documents_the_official_split():
    result = CliRunner().invoke(cli, ["datasets", "list", "--json"])
    rows = {r["name"]: r["description"] for r in json.loads(result.stdout)["datasets"]}
    assert "split: official = training 21-40 train / test 01-20 test" in rows["fundus.drive"]
    assert all("no official split" in rows[name] for name in ("fundus.chase_db1", "fundus.hrf", "fundus.stare"))


@pytest.mark.realdata
def test_real_drive_official_split_is_exactly_the_published_20_20(real_data, tmp_path):
    real_data("DRIVE")
    prepared = prepare(drive_pipeline(tmp_path, "$MSAUG_DATA/DRIVE", "official"), profile="none")
    ds = prepared.dataset
    train = [ds.cases[i].id for i in prepared.split.train]
    test = [ds.cases[i].id for i in prepared.split.test]
    assert train == [f"drive-training-{k}" for k in range(21, 41)]
    assert test == [f"drive-test-{k:02d}" for k in range(1, 21)]


@pytest.mark.slow
def test_segment_train_takes_the_official_split(tmp_path):
    """``msaug segment train --split-by official`` tests on DRIVE's test photographs, not a share of all of them."""
    root = tmp_path / "DRIVE"
    write_drive(root)
    common = ["--data", "fundus.drive", "--root", str(root), "--size", "32"]
    result = CliRunner().invoke(cli, ["segment", "train", *common, "--split-by", "official", "--encoder", "tu-resnet10t",
                                      "--steps", "1", "--batch-size", "2", "--out", str(tmp_path / "seg"), "--quiet",
                                      "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pairs = json.loads((tmp_path / "seg" / "evaluation.json").read_text())["pairs"]
    assert pairs["test"] == 2 and pairs["train"] + pairs["validation"] == 2
    shuffled = CliRunner().invoke(cli, ["segment", "train", *common, "--test-share", "0.25", "--encoder", "tu-resnet10t",
                                        "--steps", "1", "--batch-size", "2", "--out", str(tmp_path / "seg2"), "--quiet",
                                        "--device", "cpu"], catch_exceptions=False)
    assert shuffled.exit_code == 0, shuffled.output
    assert json.loads((tmp_path / "seg2" / "evaluation.json").read_text())["pairs"]["test"] == 1


def test_segment_train_rejects_a_group_pattern_without_a_group(tmp_path):
    root = tmp_path / "DRIVE"
    write_drive(root)
    result = CliRunner().invoke(cli, ["segment", "train", "--data", "fundus.drive", "--root", str(root), "--group-by", "drive",
                                      "--out", str(tmp_path / "seg")])
    assert result.exit_code == 2
    assert "--group-by 'drive'" in result.output and "a regex needs a group" in result.output


def test_drive_official_split_with_a_fraction_draws_from_the_training_half(tmp_path):
    write_drive(tmp_path / "DRIVE")
    config = DataConfig(dataset="fundus.drive", root=tmp_path / "DRIVE", size=20, split={"by": "official", "fraction": 0.5, "seed": 1})
    dataset = load_dataset(config)
    split = split_dataset(dataset, config)
    ids = [dataset[i].id for i in range(len(dataset))]
    assert len(split.train) == 1 and ids[split.train[0]] in ("drive-training-21", "drive-training-22")
    assert [ids[i] for i in split.test] == ["drive-test-01", "drive-test-02"]
