"""The ``nnunet`` and ``datalist`` datasets: what nnU-Net and MONAI users already have, read as msaug datasets.

Fixtures are written here in the tools' own layouts (nnU-Net v2 raw dataset, Decathlon
datalist; PNG, and 2-D NIfTI where nibabel is installed). Every bad input fails in
``msaug pipeline check`` (exit 2, one line naming the file or key) before any training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image as PILImage

from msaug import ConfigError, DataError
from msaug.builtin.formats import DeclaredLabels
from msaug.cli import cli
from msaug.data import DataConfig, load_dataset
from msaug.sample import DataSpec, ListDataset, Sample
from msaug.synthetic import SyntheticDataset, SyntheticWriter
from tests.test_folder_data import check, error_of

CHAIN = [
    {"use": "core.real_labels", "params": {"size": 16}},
    {"use": "core.label_resize", "params": {"in_size": 16}},
    {"use": "core.lab2im"},
]


def label_map(h: int, w: int, seed: int) -> np.ndarray:
    """0 background, 1 a disc, 2 a bar beside it (index values)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.3, 0.5) * w
    out = np.zeros((h, w), np.uint8)
    out[(yy - cy) ** 2 + (xx - cx) ** 2 <= (0.2 * h) ** 2] = 1
    out[(np.abs(yy - cy) <= 2) & (xx >= 0.75 * w)] = 2
    return out


def image_of(label: np.ndarray, channel: int = 0) -> np.ndarray:
    return (40 + 30 * channel + 60 * label).astype(np.uint8)


def write_nnunet(root: Path, n: int = 4, h: int = 24, w: int = 32, labels: dict | None = None, channels: int = 1,
                 values=None, **meta) -> Path:
    """An nnU-Net v2 raw dataset of ``n`` PNG cases (``values(i)`` gives case i's label map)."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n):
        label = values(i) if values else label_map(h, w, i)
        PILImage.fromarray(label.astype(np.uint8)).save(root / "labelsTr" / f"case_{i:03d}.png")
        for c in range(channels):
            PILImage.fromarray(image_of(label, c)).save(root / "imagesTr" / f"case_{i:03d}_{c:04d}.png")
    dataset_json = {
        "channel_names": {str(c): f"ch{c}" for c in range(channels)},
        "labels": labels or {"background": 0, "disc": 1, "bar": 2},
        "numTraining": n,
        "file_ending": ".png",
        **meta,
    }
    (root / "dataset.json").write_text(json.dumps(dataset_json))
    return root


def pipeline_yaml(tmp_path: Path, data: dict) -> Path:
    cfg = {"name": "formats", "data": {"size": 32, **data}, "stages": CHAIN, "generate": {"count": 3, "batch_size": 2}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --- nnunet ---------------------------------------------------------------------------------------


def test_nnunet_labels_become_classes_in_value_order(tmp_path):
    root = write_nnunet(tmp_path / "Dataset001_Toy", labels={"bar": 2, "background": 0, "disc": 1})
    ds = load_dataset(DataConfig(dataset="nnunet", root=root, size=32))
    assert ds.spec.classes == ("background", "disc", "bar") and ds.spec.encoding == "index" and ds.spec.channels == 1
    assert ds.ids == ["case_000", "case_001", "case_002", "case_003"]
    native = ds.native(2)
    stored = label_map(24, 32, 2)
    assert native.label.shape == (3, 24, 32)
    assert np.array_equal(native.label.argmax(axis=0), stored) and np.all(native.label.sum(axis=0) == 1)
    assert np.allclose(native.image[0], image_of(stored) / 255.0)
    assert native.meta["image_files"] == [str(root / "imagesTr" / "case_002_0000.png")]
    square = ds[2]  # padded to a square as the folder dataset does: 32 x 32 with the 24 rows as roi
    assert square.label.shape == (3, 32, 32) and square.image.shape == (1, 32, 32)
    assert square.roi.sum() == 24 * 32 and np.array_equal(square.label[:, 4:28].argmax(axis=0), stored)
    ds.check()


def test_check_reads_each_case_once_for_the_training_that_follows(tmp_path, monkeypatch):
    """pipeline run checks the data first: the samples it then trains on come from that one read."""
    import msaug.builtin.formats as formats

    root = write_nnunet(tmp_path / "Dataset004_Once", n=3)
    ds = load_dataset(DataConfig(dataset="nnunet", root=root, size=32))
    reads: list[str] = []
    real_read = formats.read_case_label
    monkeypatch.setattr(formats, "read_case_label", lambda path, colours=False: (reads.append(Path(path).name), real_read(path, colours))[1])
    ds.check()
    assert reads == ["case_000.png", "case_001.png", "case_002.png"]
    samples = [ds[i] for i in range(len(ds))]
    assert reads == ["case_000.png", "case_001.png", "case_002.png"]  # no second decode
    assert [s.id for s in samples] == ds.ids and samples[1].label.shape == (3, 32, 32)


def test_nnunet_regions_become_overlapping_channels(tmp_path):
    def values(i):
        out = label_map(16, 16, i)
        out[:4, :4] = 3  # lung + clavicle
        return out

    labels = {"background": 0, "lung": [1, 3], "clavicle": [2, 3]}
    root = write_nnunet(tmp_path / "Dataset002_Regions", labels=labels, values=values, regions_class_order=[1, 2])
    ds = load_dataset(DataConfig(dataset="nnunet", root=root, size=16))
    assert ds.spec.classes == ("lung", "clavicle") and ds.spec.encoding == "multilabel"
    label = ds.native(0).label
    stored = values(0)
    assert np.array_equal(label[0], np.isin(stored, [1, 3])) and np.array_equal(label[1], np.isin(stored, [2, 3]))
    assert label[:, :4, :4].all()  # the overlap keeps both labels


def test_nnunet_channels_are_one_file_each_or_one_rgb_file(tmp_path):
    root = write_nnunet(tmp_path / "Dataset003_Two", channels=2)
    sample = load_dataset(DataConfig(dataset="nnunet", root=root, size=32)).native(1)
    stored = label_map(24, 32, 1)
    assert sample.image.shape == (2, 24, 32)
    assert np.allclose(sample.image[1], image_of(stored, 1) / 255.0)

    rgb = tmp_path / "Dataset004_Rgb"
    write_nnunet(rgb, n=2)
    meta = json.loads((rgb / "dataset.json").read_text())
    (rgb / "dataset.json").write_text(json.dumps({**meta, "channel_names": {"0": "R", "1": "G", "2": "B"}}))
    for path in (rgb / "imagesTr").iterdir():
        grey = np.asarray(PILImage.open(path))
        PILImage.fromarray(np.stack([grey, grey // 2, grey // 3], -1)).save(path)
    sample = load_dataset(DataConfig(dataset="nnunet", root=rgb, size=32)).native(0)
    assert sample.image.shape == (3, 24, 32)
    assert np.allclose(sample.image[2], (image_of(label_map(24, 32, 0)) // 3) / 255.0)


def _break(root: Path, how: str) -> str:
    """Break the nnU-Net dataset ``root`` in one way; returns what the error must say."""
    meta_path = root / "dataset.json"
    meta = json.loads(meta_path.read_text())
    if how == "no dataset.json":
        meta_path.unlink()
        return f"{meta_path}: not found; an nnU-Net v2 raw dataset folder"
    if how == "missing label":
        (root / "labelsTr" / "case_002.png").unlink()
        meta["numTraining"] = 3
        meta_path.write_text(json.dumps(meta))
        return f"{root / 'imagesTr' / 'case_002_0000.png'}: image without a label: no {root / 'labelsTr' / 'case_002.png'}"
    if how == "missing image":
        (root / "imagesTr" / "case_001_0000.png").unlink()
        return f"{root / 'imagesTr' / 'case_001_0000.png'}: missing ({root / 'labelsTr' / 'case_001.png'} needs 1 channel"
    if how == "undeclared value":
        bad = label_map(24, 32, 3)
        bad[0, 0] = 7
        PILImage.fromarray(bad).save(root / "labelsTr" / "case_003.png")
        return f"{root / 'labelsTr' / 'case_003.png'}: label value 7 is not declared in {meta_path}'s labels; valid values: 0 (background), 1 (disc), 2 (bar)"
    if how == "size mismatch":
        PILImage.fromarray(np.zeros((20, 32), np.uint8)).save(root / "imagesTr" / "case_001_0000.png")
        return f"{root / 'imagesTr' / 'case_001_0000.png'}: image is 32x20 but its label case_001.png is 32x24; they must match"
    if how == "unknown file_ending":
        meta["file_ending"] = ".mha"
        meta_path.write_text(json.dumps(meta))
        return f"{meta_path}: file_ending '.mha': msaug reads .png, .tif"
    if how == "numTraining":
        meta["numTraining"] = 9
        meta_path.write_text(json.dumps(meta))
        return f"{meta_path}: numTraining is 9 but labelsTr holds 4 cases; set it to 4"
    if how == "missing field":
        del meta["labels"]
        meta_path.write_text(json.dumps(meta))
        return f"{meta_path}: missing labels (nnU-Net v2's dataset.json needs channel_names, labels, numTraining, file_ending)"
    if how == "no background":
        meta["labels"] = {"disc": 1, "bar": 2}
        meta_path.write_text(json.dumps(meta))
        return f"{meta_path}: labels must declare background as 0"
    raise AssertionError(how)


BREAKS = ["no dataset.json", "missing label", "missing image", "undeclared value", "size mismatch", "unknown file_ending",
          "numTraining", "missing field", "no background"]


@pytest.mark.parametrize("how", BREAKS)
def test_a_broken_nnunet_dataset_fails_in_pipeline_check_naming_the_file(tmp_path, how):
    root = write_nnunet(tmp_path / "Dataset005_Broken")
    expected = _break(root, how)
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root)})))
    assert expected in text


def test_nnunet_config_keys_may_restate_the_labels_but_not_change_them(tmp_path):
    root = write_nnunet(tmp_path / "Dataset006_Toy")
    assert check(pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root), "classes": ["background", "disc", "bar"]})).exit_code == 0
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root), "classes": ["background", "lesion"]})))
    assert "data.classes: ['background', 'lesion'] differs from" in text and "which give ['background', 'disc', 'bar']; remove data.classes" in text
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root), "options": {"window": 3}})))
    assert "data.options: dataset 'nnunet' has no option 'window'; valid: intensity (default None)" in text


def test_a_pipeline_checks_and_runs_on_an_nnunet_folder(tmp_path):
    root = write_nnunet(tmp_path / "Dataset007_Run", n=5)
    path = pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root), "split": {"train": 0.8, "test": 0.2}})
    result = check(path)
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["pipeline", "run", str(path), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    synthetic = SyntheticDataset(out / "synthetic")
    assert len(synthetic) == 3 and synthetic.spec.classes == ("background", "disc", "bar")
    assert synthetic[0].label.shape == (3, 32, 32)
    resolved = yaml.safe_load((out / "pipeline.resolved.yaml").read_text())
    assert resolved["data"]["dataset"] == "nnunet"


def test_data_verify_reads_an_nnunet_folder(tmp_path):
    root = write_nnunet(tmp_path / "Dataset008_Verify")
    result = CliRunner().invoke(cli, ["data", "verify", str(root)])
    assert result.exit_code == 0, result.output
    assert "4 items checked, no problems" in result.output
    (root / "dataset.json").unlink()
    (root / "labelsTr").mkdir(exist_ok=True)
    text = error_of(CliRunner().invoke(cli, ["data", "verify", str(root)]))
    assert f"{root / 'dataset.json'}: not found; an nnU-Net v2 raw dataset folder holds dataset.json" in text


# --- NIfTI ----------------------------------------------------------------------------------------


def write_nifti(path: Path, array: np.ndarray, spacing=(0.7, 0.5)) -> None:
    """``array`` ``[H, W]`` as a 2-D NIfTI slice the way SimpleITK writes a PNG's pixels (x = columns), spacing (x, y) mm."""
    nib = pytest.importorskip("nibabel")
    affine = np.diag([spacing[0], spacing[1], 1.0, 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array.T[..., None]), affine), str(path))


def write_nifti_nnunet(root: Path, n: int = 3, dtype=np.uint16) -> Path:
    pytest.importorskip("nibabel")
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n):
        label = label_map(20, 28, i)
        write_nifti(root / "labelsTr" / f"case_{i:03d}.nii.gz", label.astype(np.uint8))
        write_nifti(root / "imagesTr" / f"case_{i:03d}_0000.nii.gz", (image_of(label).astype(np.float64) * 100).astype(dtype))
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "disc": 1, "bar": 2},
                                                   "numTraining": n, "file_ending": ".nii.gz"}))
    return root


def test_nnunet_nifti_keeps_orientation_and_carries_spacing(tmp_path):
    root = write_nifti_nnunet(tmp_path / "Dataset010_Nifti")
    ds = load_dataset(DataConfig(dataset="nnunet", root=root, size=32))
    ds.check()
    sample = ds.native(1)
    stored = label_map(20, 28, 1)
    assert sample.label.shape == (3, 20, 28) and np.array_equal(sample.label.argmax(axis=0), stored)
    assert sample.meta["spacing_mm"] == pytest.approx((0.5, 0.7))  # rows (y), then columns (x)
    assert np.allclose(sample.image[0], image_of(stored).astype(np.float64) * 100 / 65535.0, atol=1e-6)  # uint16: scaled by its range
    assert ds[1].meta["spacing_mm"] == pytest.approx((0.5, 0.7))


def test_nifti_intensity_window_option_clips_and_scales(tmp_path):
    root = write_nifti_nnunet(tmp_path / "Dataset011_Window", dtype=np.int16)
    ds = load_dataset(DataConfig(dataset="nnunet", root=root, size=32, options={"intensity": [4000, 10000]}))
    image = ds.native(0).image[0]
    raw = image_of(label_map(20, 28, 0)).astype(np.float64) * 100
    assert np.allclose(image, np.clip((raw - 4000) / 6000, 0, 1), atol=1e-6)
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root), "options": {"intensity": [5, 1]}})))
    assert "data.options.intensity: expected [low, high] with low < high" in text


def test_a_nifti_volume_is_refused_naming_the_file(tmp_path):
    root = write_nifti_nnunet(tmp_path / "Dataset012_Volume")
    nib = pytest.importorskip("nibabel")
    path = root / "labelsTr" / "case_001.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((28, 20, 5), np.uint8), np.eye(4)), str(path))
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "nnunet", "root": str(root)})))
    assert f"{path}: a 3-D NIfTI of shape (28, 20, 5); msaug reads 2-D images only" in text


def test_nifti_without_nibabel_is_a_config_error_naming_the_file_and_the_extra(tmp_path, monkeypatch):
    root = write_nifti_nnunet(tmp_path / "Dataset013_NoNib")
    monkeypatch.setitem(sys.modules, "nibabel", None)  # import nibabel now raises ImportError
    ds = load_dataset(DataConfig(dataset="nnunet", root=root, size=32))
    with pytest.raises(ConfigError, match=r"case_000\.nii\.gz: NIfTI files need nibabel, which is not installed: pip install msaug\[nifti\]"):
        ds.check()
    text = error_of(CliRunner().invoke(cli, ["data", "verify", str(root)]))
    assert "file_ending '.nii.gz': NIfTI files need nibabel, which is not installed: pip install msaug[nifti]" in text


def test_data_verify_reads_nifti_label_values(tmp_path):
    root = write_nifti_nnunet(tmp_path / "Dataset014_VerifyNifti")
    assert CliRunner().invoke(cli, ["data", "verify", str(root)]).exit_code == 0
    bad = label_map(20, 28, 2)
    bad[3, 3] = 5
    write_nifti(root / "labelsTr" / "case_002.nii.gz", bad)
    result = CliRunner().invoke(cli, ["data", "verify", str(root)])
    assert result.exit_code == 1
    assert "case_002.nii.gz: label value 5 is not in dataset.json's labels (valid: 0, 1, 2)" in " ".join(result.output.split())


# --- datalist -------------------------------------------------------------------------------------


def write_datalist(root: Path, n: int = 4, labels: dict | None = None, base: str | None = None, on: int = 1, **extra) -> Path:
    """A Decathlon-style task folder: imagesTr/, labelsTr/ and dataset.json listing the pairs (paths "./imagesTr/...")."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        label = (label_map(24, 32, i) > 0).astype(np.uint8) * on
        PILImage.fromarray(label).save(root / "labelsTr" / f"img{i}.png")
        PILImage.fromarray(image_of(label > 0)).save(root / "imagesTr" / f"img{i}.png")
        training.append({"image": f"./imagesTr/img{i}.png", "label": f"./labelsTr/img{i}.png"})
    meta = {"name": "toy", "training": training, **extra}
    if labels is not None:
        meta["labels"] = labels
    path = root / "dataset.json"
    path.write_text(json.dumps(meta))
    return path


def test_a_decathlon_datalist_takes_its_classes_from_labels(tmp_path):
    path = write_datalist(tmp_path / "Task01", labels={"0": "background", "1": "tumour"})
    for root in (path, path.parent):  # the JSON file, or the task folder holding dataset.json
        ds = load_dataset(DataConfig(dataset="datalist", root=root, size=32))
        assert ds.spec.classes == ("background", "tumour") and ds.spec.encoding == "index" and len(ds) == 4
    sample = ds.native(2)
    assert np.array_equal(sample.label[1], label_map(24, 32, 2) > 0)
    assert ds.ids == ["img0", "img1", "img2", "img3"]
    assert check(pipeline_yaml(tmp_path, {"dataset": "datalist", "root": str(path)})).exit_code == 0


def test_datalist_classes_and_value_maps_from_the_config(tmp_path):
    path = write_datalist(tmp_path / "t", on=255)
    ds = load_dataset(DataConfig(dataset="datalist", root=path, size=32, label_values={0: "background", 255: "lesion"}))
    assert ds.spec.classes == ("background", "lesion")
    assert np.array_equal(ds.native(0).label[1], label_map(24, 32, 0) > 0)
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "datalist", "root": str(path)})))
    assert f"data.classes: {path} has no labels (value -> class name) to take the classes from" in text


def test_datalist_base_dir_option(tmp_path):
    path = write_datalist(tmp_path / "data", labels={"0": "background", "1": "tumour"})
    moved = tmp_path / "lists" / "list.json"
    moved.parent.mkdir()
    path.rename(moved)
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "datalist", "root": str(moved)})))
    assert f"{moved}: training[0].image: {moved.parent / 'imagesTr' / 'img0.png'} not found (paths are relative to {moved.parent})" in text
    ds = load_dataset(DataConfig(dataset="datalist", root=moved, size=32, options={"base_dir": "../data"}))
    assert len(ds) == 4 and ds.native(0).label.shape == (2, 24, 32)


def test_datalist_bad_items_and_values_fail_in_check(tmp_path):
    path = write_datalist(tmp_path / "t", labels={"0": "background", "1": "tumour"})
    meta = json.loads(path.read_text())
    PILImage.fromarray(np.full((24, 32), 3, np.uint8)).save(path.parent / "labelsTr" / "img1.png")
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "datalist", "root": str(path)})))
    assert f"img1.png: label value 3 is not declared in {path}'s labels; valid values: 0 (background), 1 (tumour)" in text
    path.write_text(json.dumps({**meta, "training": [{"image": "./imagesTr/img0.png"}]}))
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "datalist", "root": str(path)})))
    assert f"{path}: training[0]: every item needs \"image\" and \"label\"" in text
    path.write_text(json.dumps({**meta, "training": [], "validation": meta["training"]}))
    text = error_of(check(pipeline_yaml(tmp_path, {"dataset": "datalist", "root": str(path)})))
    assert f"{path}: no 'training' list of" in text and "lists there: validation (data.options.key)" in text
    assert len(load_dataset(DataConfig(dataset="datalist", root=path, size=32, options={"key": "validation"}))) == 4


def test_datalist_of_nifti_pairs(tmp_path):
    pytest.importorskip("nibabel")
    (tmp_path / "d").mkdir()
    label = label_map(20, 28, 0)
    write_nifti(tmp_path / "d" / "a_label.nii.gz", label)
    write_nifti(tmp_path / "d" / "a.nii.gz", image_of(label), spacing=(1.5, 2.0))
    path = tmp_path / "d" / "list.json"
    path.write_text(json.dumps({"training": [{"image": "a.nii.gz", "label": "a_label.nii.gz"}], "labels": {"0": "bg", "1": "disc", "2": "bar"}}))
    sample = load_dataset(DataConfig(dataset="datalist", root=path, size=32)).native(0)
    assert np.array_equal(sample.label.argmax(axis=0), label)
    assert np.allclose(sample.image[0], image_of(label) / 255.0) and sample.meta["spacing_mm"] == pytest.approx((2.0, 1.5))


def _synthetic(root: Path, encoding: str, bit_depth: int, n: int = 3, channels: int = 3) -> tuple[Path, ListDataset]:
    """A synthetic folder of ``n`` pairs with overlapping channels (multilabel) or three classes (index)."""
    rng = np.random.default_rng(1)
    classes = ("a", "b", "c")
    spec = DataSpec(classes, encoding, 1, 16, "toy")
    samples = []
    for i in range(n):
        image = rng.uniform(0, 1, (1, 16, 16)).astype(np.float32)
        if encoding == "multilabel":
            label = (rng.uniform(0, 1, (channels, 16, 16)) > 0.5).astype(np.float32)
        else:
            label = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (16, 16))].transpose(2, 0, 1)
        samples.append(Sample(f"s{i}", image, label))
    pairs = ListDataset(spec, samples)
    writer = SyntheticWriter(root, spec, bit_depth=bit_depth)
    entries = {i: writer.write_pair(i, torch.as_tensor(s.image), torch.as_tensor(s.label), seed=i, extra={"stages": {}}) for i, s in enumerate(samples)}
    writer.finalize(entries)
    return root, pairs


@pytest.mark.parametrize("encoding,bit_depth", [("multilabel", 16), ("index", 8)])
def test_msaug_export_monai_reads_back_losslessly(tmp_path, encoding, bit_depth):
    synth, pairs = _synthetic(tmp_path / "synthetic", encoding, bit_depth)
    datalist = tmp_path / "out" / "datalist.json"
    result = CliRunner().invoke(cli, ["export", "monai", str(synth), "--out", str(datalist)])
    assert result.exit_code == 0, result.output
    ds = load_dataset(DataConfig(dataset="datalist", root=datalist, size=16))
    written = SyntheticDataset(synth)
    assert ds.spec.classes == ("a", "b", "c") and ds.spec.encoding == encoding and ds.spec.channels == 1
    for i in range(len(pairs)):
        sample = ds.native(i)
        assert np.array_equal(sample.label, pairs[i].label)  # every bit of every channel
        assert np.array_equal(sample.image, written[i].image)  # the stored images exactly, 16-bit included
        assert np.abs(sample.image - pairs[i].image).max() <= 0.5 / ((1 << bit_depth) - 1) + 1e-7
    result = CliRunner().invoke(cli, ["data", "verify", str(datalist)])
    assert result.exit_code == 0 and "datalist dataset" in result.output and "3 items checked, no problems" in result.output


def test_declared_labels_messages_name_the_source():
    labels = DeclaredLabels.from_nnunet({"background": 0, "lung": [1, 3], "clavicle": [2, 3]}, "d.json")
    assert labels.valid() == "0 (background), 1 (lung), 2 (clavicle), 3 (lung+clavicle)"
    with pytest.raises(DataError, match=r"x.png: label values 4, 9 are not declared in d.json's labels"):
        labels.check([0, 4, 9], "grey", "x.png")
    with pytest.raises(DataError, match="share the value 1"):
        DeclaredLabels.from_nnunet({"background": 0, "a": 1, "b": 1}, "d.json")
    v1 = DeclaredLabels.from_nnunet({"0": "background", "1": "liver"}, "d.json")  # nnU-Net v1's value -> name
    assert v1.classes == ("background", "liver")


# --- the documented examples ----------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "segmentation.md"


def _doc_data_block(heading: str) -> dict:
    """The ``data:`` YAML example under ``heading`` in docs/segmentation.md."""
    text = DOCS.read_text()
    section = text[text.index(heading):]
    block = section[section.index("```yaml\n") + 8: section.index("```", section.index("```yaml\n") + 8)]
    return yaml.safe_load(block)["data"]


def test_the_documented_yaml_examples_load(tmp_path):
    nnunet = {**_doc_data_block("### `nnunet`"), "root": str(write_nnunet(tmp_path / "Dataset501_CXR"))}
    assert nnunet["dataset"] == "nnunet" and nnunet["options"] == {"intensity": [-1000, 400]}
    assert check(pipeline_yaml(tmp_path, nnunet)).exit_code == 0
    datalist = {**_doc_data_block("### `datalist`"), "root": str(write_datalist(tmp_path / "Task09_Spleen"))}
    assert datalist["classes"] == ["background", "spleen"]
    result = check(pipeline_yaml(tmp_path, datalist))
    assert result.exit_code == 0, result.output


def test_the_documented_export_import_round_trip(tmp_path, monkeypatch):
    """docs/segmentation.md: export monai, data verify the datalist, run a pipeline on it with --set."""
    synth, pairs = _synthetic(tmp_path / "runs" / "x" / "synthetic", "multilabel", 8)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["export", "monai", "runs/x/synthetic", "--out", "exports/x.json"]).exit_code == 0
    assert runner.invoke(cli, ["data", "verify", "exports/x.json"]).exit_code == 0
    path = pipeline_yaml(tmp_path, {"dataset": "folder", "root": "unused", "size": 16})
    result = runner.invoke(cli, ["pipeline", "run", str(path), "--out", "again", "--quiet", "--device", "cpu",
                                 "--set", "data.dataset=datalist", "--set", "data.root=exports/x.json"])
    assert result.exit_code == 0, result.output
    again = SyntheticDataset(tmp_path / "again" / "synthetic")
    assert again.spec.classes == ("a", "b", "c") and again.spec.encoding == "multilabel" and len(again) == 3
