"""Native resolution: patch training, sliding-window prediction, scoring on the original grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from msaug import DataSpec, Sample
from msaug.pipeline.schema import EvaluateConfig, SegmenterConfig
from msaug.resize import SquareGeometry, resize_image, resize_label, square_label
from msaug.sample import SubsetDataset
from msaug.segment.data import SegmentationTensors, native_square_side, random_crops, square_tensors
from msaug.segment.evaluate import describe_resolution, evaluate_pipeline, format_markdown, native_test_metrics
from msaug.segment.inference import padded_forward
from msaug.segment.segmenter import Segmenter, SegmenterInfo

SPEC = DataSpec(("background", "disc"), "index", 1, 16, "toy", has_roi=True)


def disc_case(case_id: str, h: int, w: int, seed: int, roi: bool = True) -> Sample:
    """A ``h x w`` grey image: a bright disc (class 1) at a seeded place, an elliptic ROI around the centre."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (0.2 * min(h, w)) ** 2
    image = np.where(disc, 0.9, 0.1).astype(np.float32)[None]
    fov = ((yy - (h - 1) / 2) / (0.5 * h)) ** 2 + ((xx - (w - 1) / 2) / (0.5 * w)) ** 2 <= 1.0
    return Sample(case_id, image, np.stack([~disc, disc]).astype(np.float32), fov if roi else None)


class NativeDiscs:
    """Cases with an original grid of their own (``native``), square samples at ``spec.size``."""

    def __init__(self, shapes: list[tuple[int, int]], square_fit: str = "pad", roi: bool = True, size: int = 16):
        self.spec = DataSpec(SPEC.classes, SPEC.encoding, 1, size, "toy", has_roi=roi)
        self.square_fit = square_fit
        self.cases = [disc_case(f"disc-{i}", h, w, i, roi) for i, (h, w) in enumerate(shapes)]

    def __len__(self) -> int:
        return len(self.cases)

    def native(self, index: int) -> Sample:
        return self.cases[index]

    def __getitem__(self, index: int) -> Sample:
        case = self.cases[index]
        geometry = SquareGeometry(*case.label.shape[-2:], self.square_fit)  # type: ignore[arg-type]
        label = resize_label(square_label(geometry, torch.from_numpy(case.label), "index"), self.spec.size, "index")
        image = resize_image(geometry.to_square(torch.from_numpy(case.image)), self.spec.size)
        roi = None
        if case.roi is not None:
            roi = (resize_label(geometry.to_square(torch.from_numpy(case.roi)[None].float()), self.spec.size, "multilabel")[0] > 0.5).numpy()
        return Sample(case.id, image.numpy(), label.numpy(), roi)


class Recording(nn.Module):
    """A fully convolutional (pointwise) network that records the sizes it was run at.

    Class 1 wins exactly where the grey value is above 0.5, so it segments the disc images perfectly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[-20.0], [20.0]]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([10.0, -10.0]))
        self.seen: list[tuple[int, int]] = []
        self.inputs = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[-2:]))
        self.inputs += x.shape[0]
        return self.conv(x)


def perfect_segmenter(size: int, patch: int | None = None, overlap: float = 0.25) -> Segmenter:
    return Segmenter(SegmenterInfo.for_spec(SPEC, "unet", "none", size, patch, overlap), model=Recording())


def test_sliding_windows_equal_whole_image_prediction_of_a_fully_convolutional_network():
    images = torch.rand(3, 1, 50, 50)
    whole = perfect_segmenter(50)
    windows = perfect_segmenter(50, patch=24, overlap=0.5)
    expected = whole.logits(images)
    got = windows.logits(images)
    assert got.shape == (3, 2, 50, 50)
    assert torch.allclose(got, expected, atol=1e-5)
    assert whole.model.seen == [(50, 50)]
    assert set(windows.model.seen) == {(24, 24)}  # the network only ever saw windows
    # 24 px windows overlapping by half (a 12 px stride) cover 50 px in 4 positions per side: 16 per image
    assert windows.model.inputs == 3 * 16


def test_overlapping_windows_are_blended_into_weights_that_sum_to_one():
    """A network that answers 1 everywhere must give exactly 1 everywhere after Gaussian blending."""
    segmenter = Segmenter(SegmenterInfo.for_spec(SPEC, "unet", "none", 40, 16, 0.25), model=ConstantOne())
    out = segmenter.logits(torch.zeros(2, 1, 40, 40))
    assert torch.allclose(out, torch.ones(2, 2, 40, 40), atol=1e-5)


class ConstantOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], 2, *x.shape[-2:])


def test_patch_as_large_as_the_square_means_whole_images():
    assert SegmenterInfo.for_spec(SPEC, "unet", "x", 128, 128).window is None
    assert SegmenterInfo.for_spec(SPEC, "unet", "x", 128, 256).window is None
    assert SegmenterInfo.for_spec(SPEC, "unet", "x", 584, 128).window == 128


def test_padded_forward_runs_any_size_and_crops_back():
    from msaug.segment.models import build_segmenter

    model = build_segmenter("unet", 1, 2, "tu-resnet10t").eval()
    x = torch.rand(1, 1, 40, 52)  # neither side a multiple of 32
    with torch.no_grad():
        out = padded_forward(model, x)
        manual = model(torch.nn.functional.pad(x, (0, 12, 0, 24)))[..., :40, :52]
    assert out.shape == (1, 2, 40, 52)
    assert torch.allclose(out, manual)


def test_a_patch_off_the_encoder_stride_still_predicts_every_pixel(caplog):
    """584 px squares and a 100 px patch: neither is a multiple of 32, each forward pass is padded instead of failing late."""
    info = SegmenterInfo.for_spec(SPEC, "unet", "tu-resnet10t", 120, 100)
    with caplog.at_level("WARNING"):
        segmenter = Segmenter(info)
    assert "segmenter patch 100 is not a multiple of the encoder's stride 32: each window is padded to 128" in caplog.text
    assert segmenter.logits(torch.rand(1, 1, 120, 120)).shape == (1, 2, 120, 120)


def coordinate_batch(n: int = 6, size: int = 40) -> SegmentationTensors:
    """Images whose pixel value encodes its position, so any crop can be located and checked."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    code = (yy * size + xx).float() / (size * size)
    images = code.expand(n, 1, size, size).clone() + torch.arange(n).view(n, 1, 1, 1)  # sample b adds b
    disc = ((yy - 28) ** 2 + (xx - 13) ** 2 <= 9).float()  # a small foreground at the edge of the ROI
    labels = torch.stack([1 - disc, disc]).expand(n, 2, size, size).clone()
    roi = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100).expand(n, 1, size, size).clone()
    return SegmentationTensors(images, labels, roi, [f"c{i}" for i in range(n)])


def _locate(crop: torch.Tensor, size: int) -> tuple[int, int]:
    first = int(round(float(crop[0, 0, 0] - int(crop[0, 0, 0])) * size * size))
    return divmod(first, size)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_random_crops_keep_image_label_and_roi_aligned(share):
    batch, size = coordinate_batch(), 40
    crops = random_crops(batch, 16, torch.Generator().manual_seed(0), foreground=[1], foreground_share=share)
    assert crops.images.shape == (6, 1, 16, 16) and crops.labels.shape == (6, 2, 16, 16) and crops.roi.shape == (6, 1, 16, 16)
    assert crops.ids == batch.ids
    for b in range(6):
        top, left = _locate(crops.images[b], size)
        window = (slice(None), slice(top, top + 16), slice(left, left + 16))
        assert torch.equal(crops.images[b], batch.images[b][window])  # the crop is a true window of its own sample
        assert torch.equal(crops.labels[b], batch.labels[b][window])
        assert torch.equal(crops.roi[b], batch.roi[b][window])
        assert crops.roi[b].any()  # never a crop of the region outside the ROI
        if share == 1.0:
            assert crops.labels[b, 1].any()  # centred on foreground: the small disc is always in view
    again = random_crops(batch, 16, torch.Generator().manual_seed(0), foreground=[1], foreground_share=share)
    assert torch.equal(again.images, crops.images)


def test_random_crops_leave_images_no_larger_than_the_patch_whole():
    batch = coordinate_batch(2, 16)
    assert random_crops(batch, 16, torch.Generator(), [1]) is batch


def test_square_label_marks_padding_as_background():
    geometry = SquareGeometry(4, 2, "pad")
    label = torch.tensor([[[0.0, 1.0]] * 4, [[1.0, 0.0]] * 4])
    square = square_label(geometry, label, "index")
    assert square.shape == (2, 4, 4)
    assert torch.equal(square.sum(dim=0), torch.ones(4, 4))  # one class per pixel, margin included
    assert torch.equal(square[0, :, 0], torch.ones(4)) and torch.equal(square[1, :, 1:3], label[1])
    assert torch.equal(square_label(geometry, label, "multilabel")[:, :, 0], torch.zeros(2, 4))


def test_square_tensors_fit_native_cases_to_the_segmenter_square():
    data = NativeDiscs([(20, 12), (16, 16)])
    assert native_square_side(data) == 20
    tensors = square_tensors(data, 20)
    assert tensors.images.shape == (2, 1, 20, 20) and tensors.labels.shape == (2, 2, 20, 20)
    assert torch.equal(tensors.labels[0, :, :, 4:16], torch.from_numpy(data.native(0).label))  # padded, not resampled
    assert not tensors.roi[0, 0, :, :4].any() and not tensors.roi[0, 0, :, 16:].any()  # padding is outside the ROI
    assert torch.equal(tensors.labels.sum(dim=1), torch.ones(2, 20, 20))


@pytest.mark.parametrize("patch", [None, 8])
@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_a_perfect_prediction_scores_one_at_native_size_on_non_square_cases(patch, fit):
    data = NativeDiscs([(20, 12), (12, 20)], square_fit=fit)
    side = 20 if fit == "pad" else 12
    metrics = native_test_metrics(perfect_segmenter(side, patch), data)
    assert metrics["images"] == 2
    assert metrics["mean"]["dice"]["mean"] == pytest.approx(1.0) and metrics["mean"]["dice"]["n"] == 2
    assert metrics["classes"]["background"]["iou"]["mean"] == pytest.approx(1.0)
    assert metrics["mean"]["hd95"]["mean"] == pytest.approx(0.0)


def test_a_misaligned_prediction_loses_dice_at_native_size():
    """The control for the perfect case above: a prediction shifted by 3 px scores well below 1."""

    class Shifted(Recording):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.roll(super().forward(x), shifts=3, dims=-1)

    data = NativeDiscs([(20, 12)])
    segmenter = Segmenter(SegmenterInfo.for_spec(SPEC, "unet", "none", 20), model=Shifted())
    dice = native_test_metrics(segmenter, data)["mean"]["dice"]["mean"]
    assert 0.0 < dice < 0.9


def test_resolution_descriptions():
    assert describe_resolution("native", [(584, 565)] * 20, True, 584, "pad") == "native resolution, 565 x 584 px (all 20 test images)"
    mixed = [(512, 399), (512, 512), (430, 512)]
    assert describe_resolution("native", mixed, True, 512, "pad") == "native resolution per image, 399 x 512 to 512 x 512 px (3 test images)"
    assert describe_resolution("segmenter", mixed, True, 256, "pad") == "at the segmenter's size, 256 x 256 px (test images fitted to the square by pad)"
    assert describe_resolution("native", [(32, 32)] * 3, False, 32, "pad") == (
        "at the size the dataset is loaded at (data.size), 32 x 32 px (all 3 test images; it has no original grid of its own)"
    )


def test_segmenter_size_and_patch_config():
    assert SegmenterConfig(size="native", patch=128).size == "native"
    with pytest.raises(ValueError, match=r"size must be 'native' or an int from 8 to 8192, got 'natve'"):
        SegmenterConfig(size="natve")
    with pytest.raises(ValueError, match=r"patch"):
        SegmenterConfig(patch=4)
    with pytest.raises(ValueError, match=r"window_overlap"):
        SegmenterConfig(window_overlap=1.0)
    with pytest.raises(ValueError, match=r"metrics_at"):
        EvaluateConfig(metrics_at="original")


def test_checkpoint_keeps_the_patch(tmp_path):
    info = SegmenterInfo.for_spec(SPEC, "unet", "tu-resnet10t", 96, 64, 0.5)
    Segmenter(info).save(tmp_path)
    loaded = Segmenter.load(tmp_path)
    assert (loaded.info.size, loaded.info.patch, loaded.info.window_overlap) == (96, 64, 0.5)
    assert "64 px windows" in repr(loaded)


def test_evaluation_at_native_resolution_with_patches(tmp_path):
    full = NativeDiscs([(70, 60), (64, 64), (60, 70), (70, 60), (66, 58), (70, 60)], size=32)
    train, test = SubsetDataset(full, [0, 1, 2, 3]), SubsetDataset(full, [4, 5])
    seg = {"arch": "unet", "encoder": "tu-resnet10t", "steps": 2, "batch_size": 2, "size": "native", "patch": 32}
    result = evaluate_pipeline(EvaluateConfig(segmenter=seg, protocols=["real"]), full.spec, train, test, None, tmp_path,
                               torch.device("cpu"), seed=0, show_progress=False)
    resolution = result["resolution"]
    assert result["segmenter"]["size"] == 70  # the largest training case's square side
    assert resolution["segmenter_size"] == 70 and resolution["patch"] == 32 and resolution["window_overlap"] == 0.25
    assert resolution["description"] == "native resolution per image, 58 x 66 to 60 x 70 px (2 test images)"
    assert resolution["test_sizes"] == {"smallest": [66, 58], "largest": [70, 60], "distinct": 2}
    assert resolution["inside_roi"] is True
    assert result["protocols"]["real"]["metrics"]["images"] == 2
    markdown = format_markdown(result)
    assert "70 px, 32 px patches, sliding-window prediction (overlap 0.25)" in markdown
    assert ("**Metrics computed at**: native resolution per image, 58 x 66 to 60 x 70 px (2 test images), "
            "inside each image's region of interest.") in markdown
    saved = Segmenter.load(tmp_path / "real" / "checkpoint")
    assert (saved.info.size, saved.info.patch) == (70, 32)
    from msaug.pipeline.report import render_markdown

    report = {"pipeline": "p", "profile": None, "device": "cpu", "seconds_total": 1.0, "stages": [], "generate": {"count": 0, "seed": 0},
              "data": {"dataset": "discs", "size": 32, "train": 4, "test": 2, "encoding": "index", "classes": list(SPEC.classes)},
              "evaluation": result}
    assert ("- segmentation metrics computed at: native resolution per image, 58 x 66 to 60 x 70 px (2 test images) "
            "(segmenter 70 px, 32 px patches)") in render_markdown(report)

    at_square = evaluate_pipeline(EvaluateConfig(segmenter=seg, protocols=["real"], metrics_at="segmenter"), full.spec, train,
                                  test, None, tmp_path / "square", torch.device("cpu"), seed=0, show_progress=False)
    assert at_square["resolution"]["description"] == "at the segmenter's size, 70 x 70 px (test images fitted to the square by pad)"


def test_datasets_without_an_original_grid_are_scored_at_their_size(tmp_path, toy):
    train, test = toy(4, 32, seed=0), toy(2, 32, seed=1)
    seg = {"arch": "unet", "encoder": "tu-resnet10t", "steps": 1, "batch_size": 2, "size": "native"}
    result = evaluate_pipeline(EvaluateConfig(segmenter=seg, protocols=["real"]), train.spec, train, test, None, tmp_path,
                               torch.device("cpu"), seed=0, show_progress=False)
    assert result["segmenter"]["size"] == 32 and result["resolution"]["patch"] is None
    assert result["resolution"]["description"].startswith("at the size the dataset is loaded at (data.size), 32 x 32 px")
    assert "32 px, whole images)" in format_markdown(result) and "over each whole image." in format_markdown(result)


def test_synthetic_pairs_stay_at_their_size_and_are_enlarged_for_training(tmp_path, toy):
    """Generated at 16 px, mixed into 70 px native squares; quality figures compare both sets at 16 px."""
    full = NativeDiscs([(70, 60), (64, 64), (60, 70), (66, 58), (70, 60)], size=16)
    train, test = SubsetDataset(full, [0, 1, 2]), SubsetDataset(full, [3, 4])
    synthetic = toy(4, 16, seed=5)
    seg = {"arch": "unet", "encoder": "tu-resnet10t", "steps": 2, "batch_size": 2, "size": "native", "patch": 32}
    config = EvaluateConfig(segmenter=seg, protocols=["real", "mix"], qc_min_dice=0.0)
    result = evaluate_pipeline(config, full.spec, train, test, synthetic, tmp_path, torch.device("cpu"), seed=0, show_progress=False)
    assert list(result["protocols"]) == ["real", "mix"]
    assert result["pairs"]["synthetic"] == 4 and result["qc"]["total"] == 4
    assert set(result["qc"]["scores"]) == {f"toy-5-{i:03d}" for i in range(4)}
    assert result["memorisation"]["pairs"] == 4
    assert result["protocols"]["mix"]["metrics"]["images"] == 2
