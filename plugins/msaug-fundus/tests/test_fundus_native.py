"""Real fundus photographs on their original grid: native samples, their squares, native-resolution scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fundus_fixtures import fov_disc, vessels, write_drive

from msaug import DataConfig, load_dataset, resize_image, resize_label
from msaug.resize import SquareGeometry, square_label
from msaug.sample import SubsetDataset, native_view

DRIVE_H, DRIVE_W = 584, 565  # DRIVE photographs are 565 wide, 584 high


@pytest.fixture(scope="module")
def drive_sized(tmp_path_factory):
    root = tmp_path_factory.mktemp("drive")
    write_drive(root, DRIVE_H, DRIVE_W)
    return root


def test_native_samples_are_the_photographs_own_grid(drive_sized):
    ds = load_dataset(DataConfig(dataset="fundus.drive", root=drive_sized, size=128))
    assert ds.square_fit == "pad"
    native = ds.native(0)
    assert native.id == ds[0].id == "drive-training-21"
    assert native.image.shape == (3, DRIVE_H, DRIVE_W) and native.label.shape == (2, DRIVE_H, DRIVE_W)
    assert native.roi.shape == (DRIVE_H, DRIVE_W) and native.roi.dtype == bool
    assert np.array_equal(native.label[1] > 0, vessels(DRIVE_H, DRIVE_W, 21))
    assert np.array_equal(native.roi, fov_disc(DRIVE_H, DRIVE_W))  # ROI = the FOV mask
    assert native.image[:, ~native.roi].max() == 0.0  # black outside the FOV
    assert np.allclose(native.image[:, 100, DRIVE_W // 2 - 40], [200 / 255, 100 / 255, 40 / 255], atol=1e-6)


def test_square_sample_is_the_native_one_padded_and_resized(drive_sized):
    ds = load_dataset(DataConfig(dataset="fundus.drive", root=drive_sized, size=128))
    native, square = ds.native(1), ds[1]
    geometry = SquareGeometry(DRIVE_H, DRIVE_W, "pad")
    fov = torch.from_numpy(native.roi)
    roi = resize_label(square_label(geometry, torch.stack([~fov, fov]).float(), "index"), 128, "index")[1] > 0.5
    label = resize_label(square_label(geometry, torch.from_numpy(native.label), "index"), 128, "index")
    image = resize_image(geometry.to_square(torch.from_numpy(native.image)), 128) * roi
    assert square.label.shape == (2, 128, 128)
    assert np.array_equal(square.roi, roi.numpy())
    assert np.array_equal(square.label, label.numpy())
    assert np.array_equal(square.image, image.numpy())


def test_at_the_square_side_the_square_holds_the_native_pixels_unchanged(drive_sized):
    ds = load_dataset(DataConfig(dataset="fundus.drive", root=drive_sized, size=DRIVE_H))
    native, square = ds.native(2), ds[2]
    left = (DRIVE_H - DRIVE_W) // 2  # 9 black columns each side (10 on the right)
    assert np.array_equal(square.label[:, :, left : left + DRIVE_W], native.label)
    assert np.array_equal(square.image[:, :, left : left + DRIVE_W], native.image)
    assert np.array_equal(square.roi[:, left : left + DRIVE_W], native.roi) and not square.roi[:, :left].any()
    assert square.label[0, :, :left].all()  # the padding is background


def test_native_view_through_a_split(drive_sized):
    from msaug.segment.data import native_square_side

    ds = load_dataset(DataConfig(dataset="fundus.drive", root=drive_sized, size=64))
    test = SubsetDataset(ds, [2, 3])
    sample, geometry = native_view(test, 0)
    assert sample.id == "drive-test-01" and sample.label.shape == (2, DRIVE_H, DRIVE_W)
    assert (geometry.height, geometry.width, geometry.mode, geometry.side) == (DRIVE_H, DRIVE_W, "pad", DRIVE_H)
    assert native_square_side(SubsetDataset(ds, [0, 1])) == DRIVE_H


@pytest.mark.realdata
def test_drive_is_trained_on_patches_and_scored_at_565_x_584(real_data, tmp_path):
    """A few steps on 2 real DRIVE photographs: the shapes, and that the report says native resolution."""
    from msaug.pipeline.schema import EvaluateConfig
    from msaug.segment.evaluate import evaluate_pipeline, format_markdown

    ds = load_dataset(DataConfig(dataset="fundus.drive", root=real_data("DRIVE"), size=64))
    native = ds.native(0)
    assert native.image.shape == (3, DRIVE_H, DRIVE_W) and native.label.shape == (2, DRIVE_H, DRIVE_W)
    assert native.roi.shape == (DRIVE_H, DRIVE_W) and 0.6 < native.roi.mean() < 0.8  # the FOV disc
    subsets = [case.meta["subset"] for case in ds.cases]
    train = SubsetDataset(ds, [i for i, s in enumerate(subsets) if s == "training"][:2])
    test = SubsetDataset(ds, [i for i, s in enumerate(subsets) if s == "test"][:2])
    seg = {"arch": "unet", "encoder": "tu-resnet10t", "steps": 3, "batch_size": 2, "size": "native", "patch": 128}
    result = evaluate_pipeline(EvaluateConfig(segmenter=seg, protocols=["real"]), ds.spec, train, test, None, tmp_path,
                               torch.device("cpu"), seed=0, show_progress=False)
    resolution = result["resolution"]
    assert result["segmenter"]["size"] == DRIVE_H and resolution["patch"] == 128
    assert resolution["description"] == "native resolution, 565 x 584 px (all 2 test images)"
    assert resolution["test_sizes"] == {"smallest": [DRIVE_H, DRIVE_W], "largest": [DRIVE_H, DRIVE_W], "distinct": 1}
    metrics = result["protocols"]["real"]["metrics"]
    assert metrics["images"] == 2 and 0.0 <= metrics["mean"]["dice"]["mean"] <= 1.0
    assert ("**Metrics computed at**: native resolution, 565 x 584 px (all 2 test images), inside each image's region "
            "of interest.") in format_markdown(result)
