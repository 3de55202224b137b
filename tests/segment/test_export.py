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
from msaug.segment.export import export_monai, export_nnunet, export_nnunet_split, nnunet_labels, validate_nnunet
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
    assert any(p.endswith("dataset.json: label values must be consecutive from 0, got [0, 2]") for p in problems)
    assert any(p.endswith("imagesTr/synth_000001_0000.png: missing (labelsTr/synth_000001.png needs 1 channel)") for p in problems)
    assert any(p.endswith("labelsTr/synth_000000.png: label value 1 is not in dataset.json's labels (valid: 0, 2)") for p in problems)


def test_rgb_exports_validate_as_one_file_per_case(tmp_path, toy):
    """msaug writes an RGB case as one _0000 file; nnU-Net reads it as channels R, G, B."""
    synth = write_synthetic(tmp_path / "s", toy(3, 32, channels=3))
    folder = export_nnunet(synth, tmp_path / "raw", 10, "Rgb")
    assert len(json.loads((folder / "dataset.json").read_text())["channel_names"]) == 3
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"synth_{i:06d}_0000.png" for i in range(3)]
    assert validate_nnunet(folder) == []


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


def _invoke(*args: str):
    from click.testing import CliRunner

    from msaug.cli import cli

    return CliRunner().invoke(cli, ["export", *args])


def test_monai_refuses_an_existing_file_unless_overwrite_and_only_its_own(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", toy(3, 32))
    users = tmp_path / "existing.json"
    users.write_text('{"mine": true}\n')
    result = _invoke("monai", str(synth), "--out", str(users))
    assert result.exit_code == 2
    assert f"--out {users}: the file exists; pass --overwrite to replace a datalist msaug wrote" in " ".join(result.stderr.split())
    result = _invoke("monai", str(synth), "--out", str(users), "--overwrite")
    assert result.exit_code == 2
    assert f"--out {users}: not a datalist written by msaug export monai; msaug will not overwrite it" in " ".join(result.stderr.split())
    assert users.read_text() == '{"mine": true}\n'
    ours = tmp_path / "datalist.json"
    assert _invoke("monai", str(synth), "--out", str(ours)).exit_code == 0
    assert json.loads(ours.read_text())["written_by"] == "msaug export monai"
    assert _invoke("monai", str(synth), "--out", str(ours)).exit_code == 2
    again = _invoke("monai", str(synth), "--out", str(ours), "--overwrite")
    assert again.exit_code == 0, again.output
    assert json.loads(ours.read_text())["numTraining"] == 3


def test_monai_out_that_is_a_folder_is_a_clear_error(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", toy(2, 32))
    folder = tmp_path / "lists"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        result = _invoke("monai", str(synth), "--out", str(folder), *extra)
        assert result.exit_code == 2, result.output
        assert f"--out {folder}: is a folder; name the datalist file, e.g. --out {folder / 'datalist.json'}" in " ".join(result.stderr.split())
        assert "Traceback" not in result.output and list(folder.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _invoke("monai", str(synth), "--out", str(blocker / "datalist.json"))
    assert result.exit_code == 2 and f"{blocker}: exists and is not a folder" in result.stderr


def test_nnunet_overwrite_replaces_only_datasets_msaug_wrote(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", toy(2, 32))
    raw = tmp_path / "raw"
    users = raw / "Dataset005_Hospital"
    (users / "imagesTr").mkdir(parents=True)
    (users / "dataset.json").write_text('{"name": "Hospital"}')
    result = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "5", "--name", "Synth", "--overwrite")
    assert result.exit_code == 2
    assert f"{users}: not a dataset written by msaug export; msaug will not delete it" in " ".join(result.stderr.split())
    assert (users / "dataset.json").read_text() == '{"name": "Hospital"}' and not (raw / "Dataset005_Synth").exists()
    assert _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "6", "--name", "Synth").exit_code == 0
    again = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "6", "--name", "Synth", "--overwrite")
    assert again.exit_code == 0, again.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _invoke("nnunet", str(synth), "--out", str(blocker), "--dataset-id", "7", "--name", "Synth")
    assert result.exit_code == 2 and f"--out {blocker}: exists and is not a folder" in result.stderr


def test_a_failed_nnunet_export_leaves_no_half_dataset_and_keeps_the_old_one(tmp_path, toy, monkeypatch):
    import errno
    import shutil

    synth = write_synthetic(tmp_path / "synthetic", toy(4, 32))
    raw = tmp_path / "raw"
    assert _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "8", "--name", "Old").exit_code == 0
    old = {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    real_copy, calls = shutil.copyfile, {"n": 0}

    def copyfile(src, dst, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:  # the disk fills up halfway through
            raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    result = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "8", "--name", "New", "--overwrite")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "No space left on device" in message and "labelsTr/synth_000001.png" in message and "rerun the same command" in message
    assert {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()} == old  # nothing half-written, old kept
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset008_Old"]


# --- --overlaps split: no pixel loses a label ---------------------------------------------------


def _three_structures(n: int, size: int = 24, seed: int = 0):
    """Multilabel pairs: ``lung`` and ``clavicle`` overlap, ``marker`` overlaps neither (as in chest X-rays)."""
    from msaug import DataSpec, ListDataset, Sample

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    samples = []
    for i in range(n):
        cy = rng.uniform(0.4, 0.6) * size
        lung = ((yy - cy) ** 2 + (xx - size / 2) ** 2) <= (0.3 * size) ** 2
        clavicle = (np.abs(yy - cy + 0.2 * size) <= 1.5) & (xx > 0.2 * size)  # crosses the top of the lung
        marker = (yy < 3) & (xx < 3)
        image = np.clip(0.2 + 0.5 * lung + 0.2 * clavicle + 0.05 * rng.standard_normal((size, size)), 0, 1)
        samples.append(Sample(f"x{i}", image[None].astype(np.float32), np.stack([lung, clavicle, marker]).astype(np.float32)))
    return ListDataset(DataSpec(("lung", "clavicle", "marker"), "multilabel", 1, size, "toy"), samples)


def _read_back(folders, index, case: str) -> np.ndarray:
    """The case's bit masks merged from every split dataset, each read with msaug's nnunet dataset."""
    from msaug.data import DataConfig, load_dataset
    from msaug.segment.export import merge_split_labels

    maps = {}
    for folder in folders:
        ds = load_dataset(DataConfig(dataset="nnunet", root=folder, size=24))
        assert ds.spec.encoding == "index"  # a plain nnU-Net dataset: one class per pixel
        native = ds.native(ds.ids.index(case))
        maps[folder.name] = native.label.argmax(axis=0)
    return merge_split_labels(index, maps)


def test_overlap_groups_keep_overlapping_channels_apart():
    from msaug.segment.export import overlap_groups, overlapping_pairs

    pairs = overlapping_pairs({0, 1, 2, 3, 4, 8 | 2}, 4)
    assert pairs == {(0, 1), (1, 3)}
    assert overlap_groups(4, pairs) == [[0, 2, 3], [1]]
    assert overlap_groups(3, set()) == [[0, 1, 2]]
    assert overlap_groups(3, {(0, 1), (0, 2), (1, 2)}) == [[0], [1], [2]]


def test_split_export_loses_no_overlapping_label(tmp_path):
    pairs = _three_structures(4)
    real = _three_structures(2, seed=9)
    synth = write_synthetic(tmp_path / "synthetic", pairs)
    folders, index = export_nnunet_split(synth, tmp_path / "raw", 501, "Cxr", real=real)
    assert [f.name for f in folders] == ["Dataset501_Cxr_group1", "Dataset502_Cxr_group2"]
    meta = json.loads(index.read_text())
    assert index == tmp_path / "raw" / "Cxr.split.json"
    assert meta["classes"] == ["lung", "clavicle", "marker"] and meta["overlapping"] == [["lung", "clavicle"]]
    assert [(d["folder"], d["channels"], d["labels"]) for d in meta["datasets"]] == [
        ("Dataset501_Cxr_group1", ["lung", "marker"], {"background": 0, "lung": 1, "marker": 2}),
        ("Dataset502_Cxr_group2", ["clavicle"], {"background": 0, "clavicle": 1}),
    ]
    for folder in folders:
        assert validate_nnunet(folder) == []
        dataset_json = json.loads((folder / "dataset.json").read_text())
        assert dataset_json["numTraining"] == 6 and "regions_class_order" not in dataset_json
    overlap_pixels = 0
    for i in range(4):
        bits = _read_back(folders, meta, f"synth_{i:06d}")
        expected = pairs[i].label.astype(np.int64)
        for c in range(3):
            assert np.array_equal((bits >> c) & 1, expected[c]), (i, c)  # zero loss, channel by channel
        overlap_pixels += int((expected[0] * expected[1]).sum())
    assert overlap_pixels > 0  # the data did overlap, and the overlaps came back
    for i in range(2):
        bits = _read_back(folders, index, f"real_{i:06d}")
        assert np.array_equal(np.stack([(bits >> c) & 1 for c in range(3)]), real[i].label.astype(np.int64))


def test_region_export_reads_back_as_overlapping_channels(tmp_path):
    """The default export is unchanged: one region-based dataset; its raw labels (bit masks) read back exactly."""
    from msaug.data import DataConfig, load_dataset

    pairs = _three_structures(3)
    folder = export_nnunet(write_synthetic(tmp_path / "synthetic", pairs), tmp_path / "raw", 40, "Regions")
    ds = load_dataset(DataConfig(dataset="nnunet", root=folder, size=24))
    assert ds.spec.classes == ("lung", "clavicle", "marker") and ds.spec.encoding == "multilabel"
    for i in range(3):
        assert np.array_equal(ds.native(i).label, pairs[i].label)


def test_split_export_cli(tmp_path, toy):
    synth = write_synthetic(tmp_path / "synthetic", _three_structures(3))
    raw = tmp_path / "raw"
    result = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "20", "--name", "Cxr", "--overlaps", "split")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"wrote {raw / 'Dataset020_Cxr_group1'} (3 training cases; lung, marker)" in text
    assert f"wrote {raw / 'Dataset021_Cxr_group2'} (3 training cases; clavicle)" in text
    assert f"channel map: {raw / 'Cxr.split.json'} (no pixel lost a label)" in text
    again = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "20", "--name", "Cxr", "--overlaps", "split")
    assert again.exit_code == 2 and "Dataset020_Cxr_group1 already exists" in " ".join(again.stderr.split())
    assert _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "20", "--name", "Cxr", "--overlaps", "split", "--overwrite").exit_code == 0
    default = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "30", "--name", "Cxr")
    assert default.exit_code == 0 and sorted(p.name for p in raw.iterdir() if p.name.startswith("Dataset030")) == ["Dataset030_Cxr"]
    assert json.loads((raw / "Dataset030_Cxr" / "dataset.json").read_text())["regions_class_order"] == [1, 2, 4]
    last = _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "999", "--name", "Cxr2", "--overlaps", "split")
    assert last.exit_code == 2 and "--dataset-id must be between 1 and 998 (the split writes 2 datasets, with consecutive ids from it)" in " ".join(last.stderr.split())
    index_synth = write_synthetic(tmp_path / "index", toy(2, 32, "index"))
    result = _invoke("nnunet", str(index_synth), "--out", str(raw), "--dataset-id", "40", "--name", "Idx", "--overlaps", "split")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--overlaps split: " in result.stderr and "holds index labels (one class per pixel), which never overlap; leave --overlaps out" in " ".join(result.stderr.split())


def test_merge_split_predictions_gives_the_bit_masks_back(tmp_path):
    """Label maps of each split dataset (here its labelsTr, standing for nnU-Net's predictions) merge into msaug's bit masks."""
    from msaug.io import write_png

    pairs = _three_structures(3)
    synth = write_synthetic(tmp_path / "synthetic", pairs)
    raw = tmp_path / "raw"
    assert _invoke("nnunet", str(synth), "--out", str(raw), "--dataset-id", "60", "--name", "Cxr", "--overlaps", "split").exit_code == 0
    index = raw / "Cxr.split.json"
    folders = [str(raw / "Dataset060_Cxr_group1" / "labelsTr"), str(raw / "Dataset061_Cxr_group2" / "labelsTr")]
    result = _invoke("merge-split", str(index), *folders, "--out", str(tmp_path / "merged"))
    assert result.exit_code == 0, result.output
    assert f"wrote 3 bit-mask label maps (bit k = channel k) to {tmp_path / 'merged'}" in " ".join(result.output.split())
    for i in range(3):
        bits = read_label_array(tmp_path / "merged" / f"synth_{i:06d}.png")
        assert np.array_equal(np.stack([(bits >> c) & 1 for c in range(3)]), pairs[i].label.astype(np.int64))
    again = _invoke("merge-split", str(index), *folders, "--out", str(tmp_path / "merged"))
    assert again.exit_code == 2 and "exists and is not an empty folder" in again.stderr
    one = _invoke("merge-split", str(index), folders[0], "--out", str(tmp_path / "m2"))
    assert one.exit_code == 2
    assert "splits the channels over 2 datasets (Dataset060_Cxr_group1, Dataset061_Cxr_group2); give one folder of label maps for each" in " ".join(one.stderr.split())
    write_png(Path(folders[1]) / "synth_000001.png", np.full((24, 24), 5, np.uint8))
    bad = _invoke("merge-split", str(index), *folders, "--out", str(tmp_path / "m3"))
    assert bad.exit_code == 2 and "synth_000001.png: label value 5 is not one of Dataset061_Cxr_group2's labels (0..1)" in " ".join(bad.stderr.split())
    (Path(folders[1]) / "synth_000002.png").unlink()
    gone = _invoke("merge-split", str(index), *folders, "--out", str(tmp_path / "m4"))
    assert gone.exit_code == 2 and "synth_000002.png: missing; every folder needs every case" in " ".join(gone.stderr.split())
