"""msaug's nnU-Net export read by the real nnunetv2 package: its integrity check, its image
reader and its label manager see every structure of every pair, overlaps included.

nnunetv2 is in the ``test`` extra; without it these tests skip and say so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from msaug.segment.export import export_nnunet
from msaug.synthetic import SyntheticDataset
from tests.segment.test_export import write_synthetic

pytest.importorskip("nnunetv2", reason="nnunetv2 is not installed (pip install -e '.[test]' installs it)")


@pytest.fixture(autouse=True)
def nnunet_folders(tmp_path, monkeypatch):
    """nnunetv2 reads its three folders from the environment at import; point them at tmp_path."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))


def _nnunet_channels(folder, case: str) -> np.ndarray:
    """``[K, H, W]`` bool masks of a case's structures, decoded by nnunetv2's own reader and label manager."""
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    meta = json.loads((folder / "dataset.json").read_text())
    manager = LabelManager(meta["labels"], meta.get("regions_class_order"))
    seg, _ = NaturalImage2DIO().read_seg(str(folder / "labelsTr" / f"{case}.png"))
    seg = seg[0, 0]  # nnU-Net's 2-D images are [C, 1, H, W]
    if manager.has_regions:
        return np.stack([np.isin(seg, region) for region in manager.foreground_regions])
    return np.stack([seg == value for value in manager.foreground_labels])


@pytest.mark.parametrize("encoding", ["index", "multilabel"])
def test_nnunet_verifies_the_export_and_decodes_every_structure(tmp_path, toy, encoding):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    pairs = toy(5, 32, encoding)
    synth = write_synthetic(tmp_path / "synthetic", pairs)
    folder = export_nnunet(synth, tmp_path / "raw", 42, "Interop")
    verify_dataset_integrity(str(folder), 1)  # raises on any problem nnU-Net would train into
    written = SyntheticDataset(synth)
    overlap = 0
    for i in range(len(pairs)):
        expected = written[i].label.astype(bool)
        if encoding == "index":
            expected = expected[1:]  # nnU-Net's foreground labels: the background channel is implicit
        decoded = _nnunet_channels(folder, f"synth_{i:06d}")
        assert decoded.shape == expected.shape
        assert np.array_equal(decoded, expected), f"pair {i}: nnU-Net decodes other structures than msaug wrote"
        overlap += int((expected.sum(axis=0) > 1).sum())
    if encoding == "multilabel":
        assert overlap > 0  # the toy structures overlap: the check above covered overlapping pixels


def test_split_export_round_trips_through_nnunet_with_zero_loss(tmp_path):
    """--overlaps split: every group dataset passes nnU-Net's check; nnU-Net's reader gives label maps
    whose merge (msaug export merge-split's function) is the original bit masks, overlaps included."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    from msaug.segment.export import export_nnunet_split, merge_split_labels
    from tests.segment.test_export import _three_structures

    pairs = _three_structures(4)
    synth = write_synthetic(tmp_path / "synthetic", pairs)
    folders, index = export_nnunet_split(synth, tmp_path / "raw", 601, "Split")
    assert len(folders) == 2
    for folder in folders:
        verify_dataset_integrity(str(folder), 1)
    reader = NaturalImage2DIO()
    overlap = 0
    for i in range(len(pairs)):
        maps = {f.name: reader.read_seg(str(f / "labelsTr" / f"synth_{i:06d}.png"))[0][0, 0] for f in folders}
        bits = merge_split_labels(index, maps)
        expected = pairs[i].label.astype(np.int64)
        assert np.array_equal(np.stack([(bits >> c) & 1 for c in range(3)]), expected), f"pair {i}"
        overlap += int((expected[0] * expected[1]).sum())
    assert overlap > 0


def test_with_real_writes_the_held_out_cases_to_imagests_and_nnunet_accepts_it(tmp_path):
    """--with-real: the real training split joins imagesTr, the held-out share goes to imagesTs/labelsTs."""
    from click.testing import CliRunner
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    from msaug.cli import cli
    from msaug.io import read_label_array
    from msaug.data import DataConfig, load_dataset

    phantoms = load_dataset(DataConfig(dataset="xray.phantom", size=32, count=10))
    synth = write_synthetic(tmp_path / "xray-synthetic", phantoms)
    raw = tmp_path / "raw"
    result = CliRunner().invoke(cli, ["export", "nnunet", str(synth), "--out", str(raw), "--dataset-id", "77", "--name", "WithReal",
                                      "--with-real", "xray.phantom", "--count", "10", "--test-share", "0.3"])
    assert result.exit_code == 0, result.output
    folder = raw / "Dataset077_WithReal"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 10 + 7
    tests = sorted(p.name for p in (folder / "imagesTs").iterdir())
    assert tests == [f"test_{i:06d}_0000.png" for i in range(3)]
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == [f"test_{i:06d}.png" for i in range(3)]
    assert "17 training cases, 3 test cases in imagesTs" in " ".join(result.output.split())
    verify_dataset_integrity(str(folder), 1)
    seg, _ = NaturalImage2DIO().read_seg(str(folder / "labelsTs" / "test_000000.png"))
    assert np.array_equal(seg[0, 0], read_label_array(folder / "labelsTs" / "test_000000.png"))
    assert seg.max() > 0
