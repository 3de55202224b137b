"""data.crops: stages learn native-resolution patches and the pairs are used at their own pixel scale."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from msaug import DataSpec, ListDataset, Sample
from msaug.cli import cli
from msaug.errors import DataError
from msaug.sample import CROP_ROI_SHARE, native_crops
from msaug.segment.data import SegmentationTensors, at_size
from msaug.segment.qc import score_pairs
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.segment.stage_probe import MAX_CASES
from tests.conftest import CLASSIC, write_folder_dataset


class NativeCases(ListDataset):
    """Cases larger than the spec's size, offered on their own grid as file-backed datasets do."""

    square_fit = "pad"

    def native(self, index: int) -> Sample:
        return self.samples[index]


def cases(n: int = 2, h: int = 120, w: int = 100, roi: bool = True) -> NativeCases:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    fov = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) <= (0.45 * min(h, w)) ** 2
    samples = []
    for i in range(n):
        image = rng.random((3, h, w)).astype(np.float32)
        label = np.zeros((2, h, w), np.float32)
        label[1] = (rng.random((h, w)) > 0.9) & fov
        label[0] = 1 - label[1]
        samples.append(Sample(f"case{i}", image, label, fov if roi else None))
    return NativeCases(DataSpec(("background", "vessel"), "index", 3, 32, "fundus", has_roi=roi), samples)


def test_crops_are_native_pixels_of_each_case_in_turn_inside_the_roi():
    data = cases()
    crops = native_crops(data, 32, 10, seed=4)
    assert len(crops) == 10
    assert crops.spec.size == 32 and crops.spec.patches and crops.spec.classes == data.spec.classes
    assert [c.meta["crop_of"] for c in crops.samples].count("case0") == 5
    for crop in crops.samples:
        top, left, h, w = crop.meta["crop_box"]
        source = data.samples[int(crop.meta["crop_of"][-1])]
        assert (h, w) == (32, 32) and crop.image.shape == (3, 32, 32) and crop.label.shape == (2, 32, 32)
        np.testing.assert_array_equal(crop.image, source.image[:, top : top + 32, left : left + 32])  # not resampled
        np.testing.assert_array_equal(crop.label, source.label[:, top : top + 32, left : left + 32])
        assert crop.roi.mean() >= CROP_ROI_SHARE
    again = native_crops(data, 32, 10, seed=4)
    assert [c.id for c in again.samples] == [c.id for c in crops.samples]
    assert [c.id for c in native_crops(data, 32, 10, seed=5).samples] != [c.id for c in crops.samples]


def test_crops_larger_than_a_case_name_it_and_the_largest_size_that_fits():
    with pytest.raises(DataError, match=r"case 'case0' is 100x120 px, smaller than the 112 px crops.*at most 100"):
        native_crops(cases(), 112, 4, seed=0)


class ShapeRecorder(nn.Module):
    """Marks bright pixels as vessel and records the input sizes the network is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[-2:]))
        fg = 40.0 * (x[:, :1] - 0.5)
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


def test_patches_are_segmented_and_trained_at_their_own_scale():
    spec = DataSpec(("background", "vessel"), "index", 3, 64)
    images = torch.rand(3, 3, 32, 32)
    labels = torch.stack([images[:, 0] <= 0.5, images[:, 0] > 0.5], 1).float()
    roi = torch.ones(3, 1, 32, 32, dtype=torch.bool)
    model = ShapeRecorder()
    segmenter = Segmenter(SegmenterInfo.for_spec(spec, "threshold", "none"), model=model)
    whole = SegmentationTensors(images, labels, roi, ["a", "b", "c"])
    patches = SegmentationTensors(images, labels, roi, ["a", "b", "c"], patches=True)
    score_pairs(segmenter, whole)
    assert model.seen[-1] == (64, 64)  # whole images are brought to the segmenter's square
    scores = score_pairs(segmenter, patches)
    assert model.seen[-1] == (32, 32)  # patches already have its pixel scale
    assert min(scores) > 0.99
    assert at_size(patches, 64, "index") is patches
    assert at_size(whole, 64, "index").images.shape[-1] == 64
    assert patches.subset([0, 2]).patches and SegmentationTensors.concat([patches, patches]).patches


def _crops_yaml(tmp_path: Path, **changes) -> Path:
    write_folder_dataset(tmp_path / "data", n=8, size=64)
    cfg = json.loads(json.dumps(CLASSIC))
    cfg["data"]["crops"] = 12
    cfg["evaluate"] = {"segmenter": {"arch": "unet", "encoder": "tu-resnet10t", "steps": 2, "batch_size": 4,
                                     "size": "native", "patch": 32}, "protocols": ["real", "mix"]}
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    path = tmp_path / "crops.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_check_describes_the_crops(tmp_path):
    result = CliRunner().invoke(cli, ["pipeline", "check", str(_crops_yaml(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "the stages learn 12 random 32 px crops of the training cases at their original resolution" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data.size": 96}, "case 'case000' is 64x64 px, smaller than the 96 px crops (data.size); use a data.size of at most 64"),
        ({"evaluate.segmenter.size": None}, "the pairs are 32 px patches at the original resolution: set evaluate.segmenter.size: native"),
        ({"evaluate.segmenter.patch": 48}, "but the segmenter trains on 48 px crops: set evaluate.segmenter.patch to at most 32"),
        ({"evaluate.segmenter.patch": None}, "but the segmenter trains on whole images: set evaluate.segmenter.patch to at most 32"),
    ],
)
def test_check_refuses_crops_it_could_not_use(tmp_path, changes, message):
    result = CliRunner().invoke(cli, ["pipeline", "check", str(_crops_yaml(tmp_path, **changes))])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "data.crops" in result.output and "Traceback" not in result.output


def test_check_refuses_crops_of_a_dataset_without_an_original_resolution(tmp_path):
    path = tmp_path / "phantom.yaml"
    path.write_text(yaml.safe_dump({
        "name": "p", "data": {"dataset": "xray.phantom", "size": 32, "count": 8, "crops": 4},
        "stages": [{"use": "core.real_labels"}, {"use": "core.lab2im"}],
    }))
    result = CliRunner().invoke(cli, ["pipeline", "check", str(path)])
    assert result.exit_code == 2
    assert "dataset 'xray.phantom' has no cases at an original resolution of their own" in " ".join(result.output.split())


@pytest.mark.slow
def test_a_run_on_crops_writes_native_patches_and_trains_on_them(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["pipeline", "run", str(_crops_yaml(tmp_path)), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    description = json.loads((out / "synthetic" / "dataset.json").read_text())
    assert description["patches"] is True and description["size"] == 32
    report = json.loads((out / "report.json").read_text())
    evaluation = report["evaluation"]
    assert evaluation["segmenter"]["size"] == 64  # the cases' own square: the 32 px pairs are not enlarged to it
    assert evaluation["pairs"]["synthetic"] == 6  # the quick profile's generate.count
    assert 0 <= evaluation["protocols"]["mix"]["metrics"]["mean"]["dice"]["mean"] <= 1
    assert evaluation["stages"]["held_out_cases"] == MAX_CASES  # measured on patches of the held-out cases
    assert evaluation["stages"]["patches_of"] == 2
    assert f"on {MAX_CASES} native-resolution patches of 2 held-out real test cases" in (out / "report.md").read_text()
    manifest = [json.loads(line) for line in (out / "synthetic" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 6 and all(0 <= m["qc_dice"] <= 1 for m in manifest)
