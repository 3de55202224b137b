"""Loaders on fixtures written in exactly the original release layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msaug import ConfigError, DataConfig, DataError
from msaug_xray.loaders import dicom_dataset, montgomery_dataset, read_dicom, read_jsrt, scr_dataset, shenzhen_dataset

SCR_STRUCTURES = ("left lung", "right lung", "heart", "left clavicle", "right clavicle")


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _gif(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def _box(side: int, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
    mask = np.zeros((side, side), dtype=bool)
    mask[int(rows[0] * side) : int(rows[1] * side), int(cols[0] * side) : int(cols[1] * side)] = True
    return mask


# where each SCR structure is drawn in the fixtures (row span, column span, as fractions)
SCR_BOXES = {  # sixteenths, so that the boxes fall on whole pixels at 1024, 2048 and 64 px
    "left lung": ((4 / 16, 13 / 16), (9 / 16, 14 / 16)),  # patient's left: the image's right
    "right lung": ((4 / 16, 13 / 16), (2 / 16, 7 / 16)),
    "heart": ((8 / 16, 13 / 16), (6 / 16, 11 / 16)),
    "left clavicle": ((2 / 16, 3 / 16), (9 / 16, 15 / 16)),
    "right clavicle": ((2 / 16, 3 / 16), (1 / 16, 7 / 16)),
}


def _write_jsrt(path: Path, side: int) -> None:
    """Left half 4095 (the most film blackening), right half 0, big-endian 16-bit words, no header."""
    raw = np.zeros((side, side), dtype=">u2")
    raw[:, : side // 2] = 4095
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.tofile(path)


def _scr_root(tmp_path: Path, img_side: int = 2048, mask_side: int = 1024, cases=("JPCLN001", "JPCNN002")) -> Path:
    root = tmp_path / "scr"
    for i, case in enumerate(cases):
        _write_jsrt(root / "All247images" / f"{case}.IMG", img_side)
        fold = "fold1" if i % 2 == 0 else "fold2"
        for structure, (rows, cols) in SCR_BOXES.items():
            _gif(root / "scratch" / fold / "masks" / structure / f"{case}.gif", _box(mask_side, rows, cols))
    return root


def test_jsrt_raw_image_is_read_big_endian_12_bit_and_shown_bone_bright(tmp_path):
    path = tmp_path / "JPCLN001.IMG"
    _write_jsrt(path, 2048)
    assert path.stat().st_size == 2048 * 2048 * 2  # the real format: 8 MiB, no header
    image = read_jsrt(path)
    assert image.shape == (2048, 2048) and image.dtype == np.float32
    assert image[0, 0] == 0.0 and image[0, -1] == 1.0  # 4095 = darkest film -> 0


def test_scr_dataset_in_original_layout(tmp_path):
    root = _scr_root(tmp_path)
    dataset = scr_dataset(DataConfig(dataset="xray.scr", root=root, size=64))
    assert len(dataset) == 2
    sample = dataset[0]
    assert sample.id == "JPCLN001"
    assert sample.image.shape == (1, 64, 64) and sample.label.shape == (5, 64, 64)
    assert np.allclose(sample.image[0, :, :30], 0.0) and np.allclose(sample.image[0, :, 34:], 1.0)
    assert dataset.spec.classes == ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")
    assert dataset.spec.domain == "xray" and dataset.spec.encoding == "multilabel"
    for k, structure in enumerate(SCR_STRUCTURES):
        expected = _box(64, *SCR_BOXES[structure]).astype(np.float32)
        assert np.array_equal(sample.label[k], expected), structure
    # the multilabel overlap (heart over the left lung) survives loading
    assert (sample.label[0] * sample.label[2]).sum() > 0
    assert dataset[1].id == "JPCNN002"  # masks from fold2 are found too


def test_scr_img_size_option_and_count(tmp_path):
    root = _scr_root(tmp_path, img_side=128, mask_side=64)
    config = DataConfig(dataset="xray.scr", root=root, size=32, count=1, options={"img_size": 128})
    dataset = scr_dataset(config)
    assert len(dataset) == 1 and dataset[0].image.shape == (1, 32, 32)
    with pytest.raises(DataError, match=r"32768 bytes, but a JSRT \.IMG of 2048x2048 16-bit words holds 8388608"):
        scr_dataset(DataConfig(dataset="xray.scr", root=root, size=32))[0]


def test_scr_broken_layouts_name_what_is_missing(tmp_path):
    root = _scr_root(tmp_path, img_side=64, mask_side=32, cases=("JPCLN001",))
    options = {"img_size": 64}
    for gif in (root / "scratch/fold1/masks/heart").iterdir():
        gif.unlink()
    (root / "scratch/fold1/masks/heart").rmdir()
    with pytest.raises(DataError, match=r"fold1/masks: missing SCR structure folder\(s\) 'heart'"):
        scr_dataset(DataConfig(dataset="xray.scr", root=root, options=options))
    with pytest.raises(DataError, match=r"no SCR masks found; expected .*/scratch/fold1/masks"):
        scr_dataset(DataConfig(dataset="xray.scr", root=root / "All247images", options=options))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no JSRT images; expected .*/All247images/\*\.IMG"):
        scr_dataset(DataConfig(dataset="xray.scr", root=empty))
    with pytest.raises(ConfigError, match="data.root: xray.scr needs the dataset folder"):
        scr_dataset(DataConfig(dataset="xray.scr"))
    with pytest.raises(ConfigError, match=r"does not know colour \(valid: img_size\)"):
        scr_dataset(DataConfig(dataset="xray.scr", root=root, options={"colour": 1}))


def test_scr_values_beyond_12_bit_are_rejected(tmp_path):
    path = tmp_path / "JPCLN009.IMG"
    np.full((16, 16), 5000, dtype=">u2").tofile(path)
    with pytest.raises(DataError, match="values up to 5000, but JSRT images are 12-bit"):
        read_jsrt(path, 16)


def test_montgomery_layout_16_bit_padding_and_sides(tmp_path):
    base = tmp_path / "MontgomerySet"
    image = np.zeros((40, 50), dtype=np.uint16)  # non-square, 16-bit like a scanner PNG
    image[:, 25:] = 65535
    _png(base / "CXR_png" / "MCUCXR_0001_0.png", image)
    _png(base / "CXR_png" / "MCUCXR_0002_1.png", image)  # no masks: not a case
    left = np.zeros((40, 50), dtype=np.uint8)
    left[10:30, 30:45] = 255  # the image's right side = the patient's left lung
    right = np.zeros((40, 50), dtype=np.uint8)
    right[10:30, 5:20] = 255
    _png(base / "ManualMask" / "leftMask" / "MCUCXR_0001_0.png", left)
    _png(base / "ManualMask" / "rightMask" / "MCUCXR_0001_0.png", right)
    dataset = montgomery_dataset(DataConfig(dataset="xray.montgomery", root=tmp_path, size=50))
    assert len(dataset) == 1 and dataset.spec.classes == ("left_lung", "right_lung")
    sample = dataset[0]
    assert sample.image.shape == (1, 50, 50) and sample.label.shape == (2, 50, 50)
    assert np.allclose(sample.image[0, :5], 0.0)  # 5 padded rows on top (40 -> 50)
    assert np.allclose(sample.image[0, 5:45, 26:], 1.0)  # 16-bit white stays 1.0
    expected_left = np.zeros((50, 50), dtype=np.float32)
    expected_left[15:35, 30:45] = 1
    assert np.array_equal(sample.label[0], expected_left)
    assert sample.label[1, 15:35, 5:20].all() and sample.label[1].sum() == 20 * 15


def test_montgomery_missing_mask_folder(tmp_path):
    _png(tmp_path / "CXR_png" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    (tmp_path / "ManualMask" / "leftMask").mkdir(parents=True)
    with pytest.raises(DataError, match=r"missing ManualMask/rightMask \(xray.montgomery expects CXR_png"):
        montgomery_dataset(DataConfig(dataset="xray.montgomery", root=tmp_path))
    with pytest.raises(DataError, match="no CXR_png/ folder"):
        montgomery_dataset(DataConfig(dataset="xray.montgomery", root=tmp_path / "ManualMask"))


def test_shenzhen_combined_mask_is_split_into_the_patient_sides(tmp_path):
    base = tmp_path / "ChinaSet_AllFiles"
    rgb = np.zeros((48, 48, 3), dtype=np.uint8)
    rgb[..., :] = 128
    _png(base / "CXR_png" / "CHNCXR_0001_0.png", rgb)
    _png(base / "CXR_png" / "CHNCXR_0002_0.png", rgb)  # no mask: skipped, as in the published set
    mask = np.zeros((48, 48), dtype=np.uint8)
    mask[8:40, 4:20] = 255  # image left: patient's right lung (larger)
    mask[10:38, 28:42] = 255
    _png(base / "mask" / "CHNCXR_0001_0_mask.png", mask)
    dataset = shenzhen_dataset(DataConfig(dataset="xray.shenzhen", root=tmp_path, size=48))
    assert len(dataset) == 1
    sample = dataset[0]
    assert np.allclose(sample.image, 128 / 255, atol=1e-6)
    assert sample.label[0].sum() == 28 * 14 and sample.label[0, 10:38, 28:42].all()  # left lung
    assert sample.label[1].sum() == 32 * 16 and sample.label[1, 8:40, 4:20].all()  # right lung


def test_shenzhen_missing_mask_folder(tmp_path):
    _png(tmp_path / "CXR_png" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match=r"missing mask/ \(xray.shenzhen expects CXR_png/\*\.png with mask/\*_mask\.png\)"):
        shenzhen_dataset(DataConfig(dataset="xray.shenzhen", root=tmp_path))


def _dicom(path: Path, pixels: np.ndarray, bits_stored: int, photometric: str, **header: object) -> None:
    """A one-frame 16-bit-word DX file; ``header``: further attributes (RescaleSlope, WindowCenter, ...)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    for key, value in header.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_read_dicom_respects_bits_stored_and_monochrome1(tmp_path):
    pixels = np.array([[0, 4095], [2048, 1023]], dtype=np.uint16)
    _dicom(tmp_path / "m2.dcm", pixels, 12, "MONOCHROME2")
    _dicom(tmp_path / "m1.dcm", pixels, 12, "MONOCHROME1")
    m2, m1 = read_dicom(tmp_path / "m2.dcm"), read_dicom(tmp_path / "m1.dcm")
    assert np.allclose(m2, pixels / 4095.0)  # 12 bits stored: 4095 is white, not 4095/65535
    assert np.allclose(m1, 1.0 - pixels / 4095.0)  # MONOCHROME1: low values are bright
    (tmp_path / "bad.dcm").write_bytes(b"not a dicom file")
    with pytest.raises(DataError, match="bad.dcm: cannot read DICOM pixels"):
        read_dicom(tmp_path / "bad.dcm")


def test_read_dicom_applies_rescale_and_window_in_modality_units(tmp_path):
    # modality value = 2 * stored - 1024; window 1000 +- 1000 (LINEAR): -1024 -> 0, 500 -> 0.25, 1000 -> 0.5, 7166 -> 1
    pixels = np.array([[0, 762], [1012, 4095]], dtype=np.uint16)
    header = {"RescaleSlope": 2, "RescaleIntercept": -1024, "WindowCenter": 1000, "WindowWidth": 2000}
    _dicom(tmp_path / "w.dcm", pixels, 12, "MONOCHROME2", **header)
    image = read_dicom(tmp_path / "w.dcm")
    assert np.allclose(image, [[0.0, 0.25], [0.5, 1.0]], atol=1e-3)
    _dicom(tmp_path / "w1.dcm", pixels, 12, "MONOCHROME1", **header)
    assert np.allclose(read_dicom(tmp_path / "w1.dcm"), 1.0 - image)  # inverted after the VOI LUT
    # rescale alone maps the rescaled stored range to [0, 1]: the same picture as the stored values
    _dicom(tmp_path / "r.dcm", pixels, 12, "MONOCHROME2", RescaleSlope=2, RescaleIntercept=-1024)
    assert np.allclose(read_dicom(tmp_path / "r.dcm"), pixels / 4095.0, atol=1e-6)


def test_read_dicom_applies_a_voi_lut_sequence_and_scales_by_its_entry_depth(tmp_path):
    from pydicom.dataset import Dataset

    lut = np.round(np.sqrt(np.arange(4096) / 4095) * 255).astype(int)  # a gamma-like display curve, 8-bit entries
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 8])  # LUT Descriptor: entries, first value mapped, bits per entry
    item.add_new(0x00283006, "US", lut.tolist())  # LUT Data
    pixels = np.array([[0, 1024], [2048, 4095]], dtype=np.uint16)
    _dicom(tmp_path / "lut.dcm", pixels, 12, "MONOCHROME2", VOILUTSequence=[item], WindowCenter=100, WindowWidth=10)
    image = read_dicom(tmp_path / "lut.dcm")  # the LUT is preferred over the window, as pydicom's apply_voi_lut does
    assert np.allclose(image, lut[pixels] / 255.0, atol=1e-6)
    assert image[0, 1] == pytest.approx(128 / 255, abs=1e-6)  # sqrt(1024/4095) * 255 = 127.5 -> 128, not 1024/4095
    wide = Dataset()  # 16-bit entries: the output range is 0..65535
    wide.add_new(0x00283002, "US", [4096, 0, 16])
    wide.add_new(0x00283006, "US", (lut * 257).tolist())
    _dicom(tmp_path / "lut16.dcm", pixels, 12, "MONOCHROME2", VOILUTSequence=[wide])
    assert np.allclose(read_dicom(tmp_path / "lut16.dcm"), image, atol=1e-6)
    bad = Dataset()
    bad.add_new(0x00283002, "US", [4096, 0, 9])  # 9 bits per entry: not a depth the standard allows
    bad.add_new(0x00283006, "US", lut.tolist())
    _dicom(tmp_path / "bad_lut.dcm", pixels, 12, "MONOCHROME2", VOILUTSequence=[bad])
    with pytest.raises(DataError, match=r"bad_lut.dcm: cannot apply the header's modality/VOI LUT \(NotImplementedError: '9' bits per LUT entry"):
        read_dicom(tmp_path / "bad_lut.dcm")


def test_dicom_folder_dataset(tmp_path):
    pixels = np.full((32, 32), 4095, dtype=np.uint16)
    _dicom(tmp_path / "images" / "case1.dcm", pixels, 12, "MONOCHROME2")
    _png(tmp_path / "masks" / "left_lung" / "case1.png", np.pad(np.full((8, 8), 255, np.uint8), 12))
    _png(tmp_path / "masks" / "right_lung" / "case1.png", np.zeros((32, 32), np.uint8))
    config = DataConfig(dataset="xray.dicom", root=tmp_path, size=32, classes=["left_lung", "right_lung"])
    dataset = dicom_dataset(config)
    sample = dataset[0]
    assert sample.id == "case1" and np.allclose(sample.image, 1.0)
    assert sample.label[0].sum() == 64 and sample.label[1].sum() == 0
    with pytest.raises(DataError, match=r"missing mask folder\(s\) masks/heart/"):
        dicom_dataset(DataConfig(dataset="xray.dicom", root=tmp_path))


@pytest.mark.parametrize("mode", ["L", "1", "LA", "RGB", "P"])
def test_read_mask_reads_every_mask_mode_as_nonzero_is_structure(tmp_path, mode):
    from msaug_xray.loaders.common import read_mask

    truth = np.zeros((6, 9), dtype=bool)
    truth[1:4, 2:7] = True
    grey = Image.fromarray(truth.astype(np.uint8) * 255)
    path = tmp_path / f"mask-{mode}.png"
    grey.convert(mode).save(path)
    mask = read_mask(path)
    assert mask.dtype == bool and mask.shape == (6, 9)
    assert np.array_equal(mask, truth)


def test_read_mask_names_the_unreadable_file(tmp_path):
    from msaug_xray.loaders.common import read_mask

    bad = tmp_path / "left.gif"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"left\.gif: cannot read label map"):
        read_mask(bad)
    with pytest.raises(DataError, match=r"missing\.gif: file not found"):
        read_mask(tmp_path / "missing.gif")


def test_the_documented_dicom_example_prints_what_pydicom_shows(tmp_path, monkeypatch, capsys):
    import re

    text = (Path(__file__).resolve().parents[3] / "docs/segmentation.md").read_text()
    example = re.findall(r"```python\n(.+?)\n```", text.split("## Interoperability: DICOM\n", 1)[1], flags=re.S)[0]
    pixels = (np.add.outer(np.arange(32), np.arange(32)) * 64).astype(np.uint16)  # 0 .. 3968
    _dicom(tmp_path / "case.dcm", pixels, 12, "MONOCHROME2", RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=2000, WindowWidth=3000)
    monkeypatch.chdir(tmp_path)
    exec(example, {})
    assert capsys.readouterr().out.split() == ["float32", "0.0", "1.0", "True"]
