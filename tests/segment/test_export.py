"""nnU-Net v2 and MONAI exports, checked against the documented formats."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from msaug import ConfigError, DataError
from msaug.io import read_image, read_label_array
from msaug.segment.export import export_monai, export_nnunet, nnunet_labels, validate_nnunet
from msaug.segment.qc import annotate_manifest
from msaug.synthetic import SyntheticDataset, SyntheticWriter


def write_synthetic(root: Path, pairs) -> Path:
    writer = SyntheticWriter(root, pairs.spec, bit_depth=8)
    entries = {}
    for i in range(len(pairs)):
        s = pairs[i]
        entries[i] = writer.write_pair(i, torch.as_tensor(s.image), torch.as_tensor(s.label), seed=i, extra={"stages": {}})
    writer.finalize(entries)
    return root


def test_nnunet_index_export_follows_the_dataset_format(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", toy(5, 32, "index"))
    folder = export_nnunet(synth, tmp_path / "raw", 7, "ToyDiscs")
    assert folder.name == "Dataset007_ToyDiscs"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "toy"}
    assert meta["labels"] == {"background": 0, "disc": 1}
    assert meta["numTraining"] == 5 and meta["file_ending"] == ".png"
    assert "regions_class_order" not in meta
    assert sorted(p.name for p in (folder / "imagesTr").iterdir())[0] == "synth_000000_0000.png"
    label = read_label_array(folder / "labelsTr" / "synth_000003.png")
    assert set(np.unique(label).tolist()) == {0, 1}
    assert np.array_equal(label, SyntheticDataset(synth)[3].label.argmax(axis=0))
    assert validate_nnunet(folder) == []
    with pytest.raises(ConfigError, match="already exists"):
        export_nnunet(synth, tmp_path / "raw", 7, "Other")


def test_overlapping_labels_become_nnunet_regions(tmp_path, toy):
    pairs = toy(4, 32, "multilabel")
    synth = write_synthetic(tmp_path / "synthetic", pairs)
    folder = export_nnunet(synth, tmp_path / "raw", 8, "Overlap", real=toy(3, 32, "multilabel", seed=5))
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "disc": [1, 3], "bar": [2, 3]}
    assert meta["regions_class_order"] == [1, 2]
    assert meta["numTraining"] == 7
    label = read_label_array(folder / "labelsTr" / "synth_000000.png")
    disc, bar = pairs[0].label.astype(bool)
    assert (label == 3).sum() == (disc & bar).sum() > 0  # the overlap survives
    assert np.array_equal((label & 1) > 0, disc)
    real_image = read_image(folder / "imagesTr" / "real_000000_0000.png")
    assert real_image.shape == (1, 32, 32)
    assert validate_nnunet(folder) == []


def test_validator_catches_format_errors(tmp_path, toy):
    folder = export_nnunet(write_synthetic(tmp_path / "s", toy(3, 32)), tmp_path / "raw", 9, "Broken")
    (folder / "imagesTr" / "synth_000001_0000.png").unlink()
    meta = json.loads((folder / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "disc": 2}
    (folder / "dataset.json").write_text(json.dumps(meta))
    problems = validate_nnunet(folder)
    assert any("consecutive" in p for p in problems)
    assert any("synth_000001_0000.png missing" in p for p in problems)
    assert any("undeclared label values [1]" in p for p in problems)


def test_qc_filter_uses_manifest_scores(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", toy(4, 32))
    with pytest.raises(DataError, match="no qc_dice.*msaug segment qc"):
        export_monai(synth, tmp_path / "list.json", qc_min_dice=0.5)
    annotate_manifest(synth, {0: 0.9, 1: 0.2, 2: 0.6, 3: 0.4})
    path = export_monai(synth, tmp_path / "lists" / "datalist.json", qc_min_dice=0.5)
    datalist = json.loads(path.read_text())
    assert datalist["numTraining"] == 2
    assert [item["index"] for item in datalist["training"]] == [0, 2]
    assert datalist["training"][1]["qc_dice"] == 0.6
    assert datalist["labels"] == {"0": "background", "1": "disc"}
    for item in datalist["training"]:  # relative to the JSON's folder, as MONAI resolves them
        assert (path.parent / item["image"]).is_file() and (path.parent / item["label"]).is_file()
        assert not os.path.isabs(item["image"])
    folder = export_nnunet(synth, tmp_path / "raw", 10, "Filtered", qc_min_dice=0.5)
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 2


def test_bad_ids_and_names_are_config_errors(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", toy(2, 32))
    with pytest.raises(ConfigError, match="between 1 and 999"):
        export_nnunet(synth, tmp_path / "raw", 1000, "X")
    with pytest.raises(ConfigError, match="letters, digits"):
        export_nnunet(synth, tmp_path / "raw", 11, "a b")
    with pytest.raises(DataError, match="not a synthetic dataset folder"):
        export_monai(tmp_path, tmp_path / "x.json")


def test_region_labels_for_three_channels_are_consecutive():
    labels, order = nnunet_labels(["lung", "heart", "clavicle"], "multilabel")
    assert labels["clavicle"] == [4, 5, 6, 7] and order == [1, 2, 4]
    values = sorted({v for x in labels.values() for v in (x if isinstance(x, list) else [x])})
    assert values == list(range(8))
