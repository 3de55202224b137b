"""The DRIVE, CHASE_DB1, HRF and STARE loaders on fixtures written in each release layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fundus_fixtures import H, W, binary, fov_disc, photo, save, vessels, write_drive

from msaug import ConfigError, DataConfig, DataError, load_dataset



def load(name: str, root: Path | None, size: int = 20, **kw):
    return load_dataset(DataConfig(dataset=name, root=root, size=size, **kw))


def test_drive_reads_values_masks_and_subsets(tmp_path):
    write_drive(tmp_path)
    ds = load("fundus.drive", tmp_path)
    assert [ds[i].id for i in range(len(ds))] == ["drive-training-21", "drive-training-22", "drive-test-01", "drive-test-02"]
    s = ds[0]
    assert np.array_equal(s.label[1] > 0, vessels(H, W, 21))
    assert np.array_equal(s.label[0] + s.label[1], np.ones((H, W)))
    assert np.array_equal(s.roi, fov_disc(H, W))
    assert s.image.shape == (3, H, W)
    assert np.allclose(s.image[:, 10, 0], 0) and np.allclose(s.image[:, 2, 10], [200 / 255, 100 / 255, 40 / 255], atol=1e-6)
    assert s.meta["subset"] == "training" and s.meta["annotator"] == 1
    assert len(load("fundus.drive", tmp_path, options={"subset": "test"})) == 2
    assert len(load("fundus.drive", tmp_path, count=3)) == 3


def test_drive_second_annotator_on_test(tmp_path):
    write_drive(tmp_path)
    ds = load("fundus.drive", tmp_path, options={"subset": "test", "annotator": 2})
    assert np.array_equal(ds[0].label[1] > 0, vessels(H, W, 101))
    with pytest.raises(DataError, match=r"training/2nd_manual: folder not found.*subset=test"):
        load("fundus.drive", tmp_path, options={"annotator": 2})


def test_drive_broken_layouts_name_the_missing_file(tmp_path):
    write_drive(tmp_path)
    (tmp_path / "training" / "1st_manual" / "22_manual1.gif").unlink()
    with pytest.raises(DataError, match=r"training/1st_manual/22_manual1\.gif: file not found"):
        load("fundus.drive", tmp_path)
    with pytest.raises(DataError, match=r"test/mask: folder not found"):
        for f in (tmp_path / "test" / "mask").iterdir():
            f.unlink()
        (tmp_path / "test" / "mask").rmdir()
        load("fundus.drive", tmp_path, options={"subset": "test"})


def test_drive_corrupt_and_mismatched_files(tmp_path):
    write_drive(tmp_path)
    (tmp_path / "training" / "images" / "21_training.tif").write_bytes(b"not a tiff")
    ds = load("fundus.drive", tmp_path)
    with pytest.raises(DataError, match=r"21_training\.tif: cannot read image"):
        ds[0]
    save(tmp_path / "training" / "1st_manual" / "22_manual1.gif", binary(np.ones((H, W + 4), bool)), "GIF")
    with pytest.raises(DataError, match=r"22_manual1\.gif: size 24x20 differs from its photograph 22_training\.tif \(20x20\)"):
        ds[1]


def test_drive_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data.root: fundus.drive needs the folder of the DRIVE release"):
        load("fundus.drive", None)
    with pytest.raises(DataError, match=r"is not a folder"):
        load("fundus.drive", tmp_path / "nowhere")
    write_drive(tmp_path)
    with pytest.raises(ConfigError, match=r"data.options.annotator: fundus.drive does not know 3; valid: 1, 2"):
        load("fundus.drive", tmp_path, options={"annotator": 3})
    with pytest.raises(ConfigError, match=r"no option 'split'.*subset \(default 'all'\), annotator"):
        load("fundus.drive", tmp_path, options={"split": "x"})


def test_non_square_photographs_are_padded_not_cut(tmp_path):
    """DRIVE photographs are 565 x 584: padded to a square with black, nothing is cropped."""
    h, w = 20, 12
    root = tmp_path
    save(root / "training" / "images" / "21_training.tif", photo(h, w, 5), "TIFF")
    save(root / "training" / "1st_manual" / "21_manual1.gif", binary(vessels(h, w, 5)), "GIF")
    save(root / "training" / "mask" / "21_training_mask.gif", binary(fov_disc(h, w)), "GIF")
    s = load("fundus.drive", root, options={"subset": "training"})[0]
    assert s.label.shape == (2, 20, 20)
    assert np.array_equal(s.label[1][:, 4:16] > 0, vessels(h, w, 5))
    assert not s.label[1][:, :4].any() and not s.roi[:, 16:].any()
    assert s.label[1].sum() == vessels(h, w, 5).sum()


def write_chase(root: Path) -> None:
    for key in ("01L", "01R", "02L"):
        seed = int(key[:2]) * 2 + (key[2] == "R")
        save(root / f"Image_{key}.jpg", photo(H, W, seed), "JPEG")
        save(root / f"Image_{key}_1stHO.png", binary(vessels(H, W, seed)), "PNG")
        save(root / f"Image_{key}_2ndHO.png", binary(vessels(H, W, seed + 50)), "PNG")


def test_chase_db1_annotators_and_fov_from_image(tmp_path):
    write_chase(tmp_path)
    ds = load("fundus.chase_db1", tmp_path)
    assert [ds[i].id for i in range(3)] == ["chase-Image_01L", "chase-Image_01R", "chase-Image_02L"]
    assert np.array_equal(ds[1].label[1] > 0, vessels(H, W, 3))
    # no mask in the release: found in the photograph (JPEG ringing moves a few edge pixels)
    roi, disc = ds[1].roi, fov_disc(H, W)
    assert (roi & disc).sum() / (roi | disc).sum() > 0.9
    second = load("fundus.chase_db1", tmp_path, options={"annotator": 2})
    assert np.array_equal(second[1].label[1] > 0, vessels(H, W, 53))
    (tmp_path / "Image_02L_2ndHO.png").unlink()
    with pytest.raises(DataError, match=r"Image_02L_2ndHO\.png: file not found"):
        load("fundus.chase_db1", tmp_path, options={"annotator": "2ndHO"})


def test_chase_db1_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"no photographs named Image_NNL\.jpg"):
        load("fundus.chase_db1", tmp_path)


def write_hrf(root: Path) -> None:
    for key, ext in (("01_h", "jpg"), ("01_g", "JPG"), ("01_dr", "JPG"), ("02_h", "jpg")):
        seed = sum(map(ord, key))
        save(root / "images" / f"{key}.{ext}", photo(H, W, seed), "JPEG")
        save(root / "manual1" / f"{key}.tif", binary(vessels(H, W, seed)), "TIFF")
        save(root / "mask" / f"{key}_mask.tif", np.stack([binary(fov_disc(H, W))] * 3, -1), "TIFF")


def test_hrf_layout_conditions_and_rgb_masks(tmp_path):
    write_hrf(tmp_path)
    ds = load("fundus.hrf", tmp_path)
    assert sorted(ds[i].id for i in range(len(ds))) == ["hrf-01_dr", "hrf-01_g", "hrf-01_h", "hrf-02_h"]
    s = ds[[ds[i].id for i in range(4)].index("hrf-01_g")]
    assert np.array_equal(s.label[1] > 0, vessels(H, W, sum(map(ord, "01_g"))))
    assert np.array_equal(s.roi, fov_disc(H, W)) and s.meta["condition"] == "g"
    healthy = load("fundus.hrf", tmp_path, options={"conditions": ["healthy"]})
    assert sorted(healthy[i].id for i in range(len(healthy))) == ["hrf-01_h", "hrf-02_h"]
    with pytest.raises(ConfigError, match=r"data.options.conditions.*'healthy', 'glaucoma', 'diabetic_retinopathy'"):
        load("fundus.hrf", tmp_path, options={"conditions": ["cataract"]})
    (tmp_path / "mask" / "02_h_mask.tif").unlink()
    with pytest.raises(DataError, match=r"mask/02_h_mask\.tif: file not found"):
        load("fundus.hrf", tmp_path)


def write_stare(root: Path) -> None:
    save(root / "stare-images" / "im0001.ppm.gz", photo(H, W, 1), "PPM", gz=True)
    save(root / "labels-ah" / "im0001.ah.ppm.gz", np.stack([binary(vessels(H, W, 1))] * 3, -1), "PPM", gz=True)
    save(root / "labels-vk" / "im0001.vk.ppm.gz", np.stack([binary(vessels(H, W, 31))] * 3, -1), "PPM", gz=True)
    save(root / "stare-images" / "im0002.ppm", photo(H, W, 2), "PPM")
    save(root / "labels-vk" / "im0002.vk.ppm", np.stack([binary(vessels(H, W, 2))] * 3, -1), "PPM")
    save(root / "stare-images" / "im0003.ppm.gz", photo(H, W, 3), "PPM", gz=True)  # unlabelled: skipped


def test_stare_gzipped_or_not_and_annotators(tmp_path):
    write_stare(tmp_path)
    ah = load("fundus.stare", tmp_path)
    assert [ah[i].id for i in range(len(ah))] == ["stare-im0001"]
    assert np.array_equal(ah[0].label[1] > 0, vessels(H, W, 1))
    assert np.allclose(ah[0].image[:, 2, 10], [200 / 255, 100 / 255, 40 / 255], atol=1e-6)
    vk = load("fundus.stare", tmp_path, options={"annotator": "vk"})
    assert [vk[i].id for i in range(len(vk))] == ["stare-im0001", "stare-im0002"]
    assert np.array_equal(vk[0].label[1] > 0, vessels(H, W, 31)) and np.array_equal(vk[1].label[1] > 0, vessels(H, W, 2))
    (tmp_path / "stare-images" / "im0002.ppm").unlink()
    with pytest.raises(DataError, match=r"im0002\.vk\.ppm: its photograph im0002\.ppm \(or im0002\.ppm\.gz\) is not under"):
        load("fundus.stare", tmp_path, options={"annotator": 2})


def test_stare_without_labels(tmp_path):
    save(tmp_path / "im0001.ppm", photo(H, W, 1), "PPM")
    with pytest.raises(DataError, match=r"no STARE vessel labels named imNNNN\.ah\.ppm"):
        load("fundus.stare", tmp_path)


def test_real_samples_resize_to_data_size(tmp_path):
    write_drive(tmp_path)
    s = load("fundus.drive", tmp_path, size=40)[0]
    assert s.image.shape == (3, 40, 40) and s.label.shape == (2, 40, 40) and s.roi.shape == (40, 40)
    assert set(np.unique(s.label)) == {0.0, 1.0}
    assert s.image[:, ~s.roi].max() == 0.0
