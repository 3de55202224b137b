"""The folder dataset on real-world masks: value maps, colours, non-square images, labels-only
folders and grouped splits, each bad case failing in ``msaug pipeline check`` before training."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image as PILImage

from msaug.builtin import datasets as folder_module
from msaug.cli import cli
from msaug.data import DataConfig, load_dataset, split_dataset
from msaug.pipeline.runner import RunState, prepare, resolved_yaml, split_data
from msaug.sample import SubsetDataset, native_view

CHAIN = [
    {"use": "core.real_labels", "params": {"size": 16}},
    {"use": "core.label_resize", "params": {"in_size": 16}},
    {"use": "core.lab2im"},
]


def disc_mask(h: int, w: int, seed: int, on: int = 255) -> np.ndarray:
    """A uint8 mask with a disc of value ``on`` at a seed-dependent place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    r = 0.2 * min(h, w)
    return np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, on, 0).astype(np.uint8)


def write_binary_folder(root: Path, n: int = 6, h: int = 24, w: int = 32, on: int = 255, images: bool = True,
                        stems: list[str] | None = None) -> Path:
    """``n`` grey ``w x h`` images with 0/``on`` masks (a disc), the usual export of annotation tools."""
    stems = stems or [f"case{i:02d}" for i in range(n)]
    (root / "labels").mkdir(parents=True, exist_ok=True)
    if images:
        (root / "images").mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(stems):
        mask = disc_mask(h, w, i, on)
        PILImage.fromarray(mask).save(root / "labels" / f"{stem}.png")
        if images:
            PILImage.fromarray((60 + (mask > 0) * 150).astype(np.uint8)).save(root / "images" / f"{stem}.png")
    return root


def pipeline(tmp_path: Path, data: dict, stages: list | None = None, **extra) -> Path:
    cfg = {"name": "folder-test", "data": {"dataset": "folder", "root": "data", "size": 32, **data},
           "stages": stages or CHAIN, "generate": {"count": 4, "batch_size": 2}, **extra}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def check(path: Path):
    return CliRunner().invoke(cli, ["pipeline", "check", str(path), "--profile", "none"])


def error_of(result) -> str:
    """The one error line of a failed ``pipeline check`` (exit code 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.stderr.split())
    assert text.count("error:") == 1, text
    return text


def load(root: Path, **data):
    return load_dataset(DataConfig(dataset="folder", root=root, size=32, **data))


# --- values -----------------------------------------------------------------------------------


def test_binary_0_255_masks_need_no_value_map(tmp_path):
    root = write_binary_folder(tmp_path / "data")
    ds = load(root, classes=["background", "lesion"])
    ds.check()
    native = ds.native(0)
    assert native.label.shape == (2, 24, 32)
    assert np.array_equal(native.label[1] > 0, disc_mask(24, 32, 0) == 255)
    assert np.array_equal(native.label.sum(0), np.ones((24, 32)))
    result = check(pipeline(tmp_path, {"classes": ["background", "lesion"]}))
    assert result.exit_code == 0, result.output
    assert "data checked (images and labels); split: 5 train / 1 test cases" in " ".join(result.stdout.split())


def test_binary_0_1_masks_need_no_value_map(tmp_path):
    root = write_binary_folder(tmp_path / "data", on=1)
    native = load(root, classes=["background", "lesion"]).native(2)
    assert np.array_equal(native.label[1] > 0, disc_mask(24, 32, 2, 1) == 1)


def test_a_value_outside_the_default_two_class_map_fails_in_check(tmp_path):
    root = write_binary_folder(tmp_path / "data")
    mask = disc_mask(24, 32, 3)
    mask[0, :4] = 127
    PILImage.fromarray(mask).save(root / "labels/case03.png")
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"]})))
    assert f"{root}/labels/case03.png: label value 127 is outside the declared classes; valid values: 0 (background), 1 or 255 (lesion); map other values to classes with data.label_values" in text


def test_value_map_maps_grey_values_to_classes(tmp_path):
    root = write_binary_folder(tmp_path / "data")
    mask = disc_mask(24, 32, 0, on=200)
    mask[:3] = 100
    PILImage.fromarray(mask).save(root / "labels/case00.png")
    values = {0: "background", 100: "rim", 200: "lesion", 255: "lesion"}
    ds = load(root, label_values=values)
    assert ds.spec.classes == ("background", "rim", "lesion")
    ds.check()
    label = ds.native(0).label
    assert np.array_equal(label[1] > 0, mask == 100) and np.array_equal(label[2] > 0, mask == 200)
    assert np.array_equal(ds.native(1).label[2] > 0, disc_mask(24, 32, 1) == 255)
    # data.classes fixes the order (and may list classes no file uses)
    ordered = load(root, classes=["background", "lesion", "rim", "vessel"], label_values=values)
    assert ordered.spec.classes == ("background", "lesion", "rim", "vessel")
    assert np.array_equal(ordered.native(0).label[2] > 0, mask == 100)


def test_a_value_not_in_the_map_fails_in_check(tmp_path):
    root = write_binary_folder(tmp_path / "data")
    mask = disc_mask(24, 32, 4)
    mask[5, 5], mask[6, 6] = 7, 9
    PILImage.fromarray(mask).save(root / "labels/case04.png")
    text = error_of(check(pipeline(tmp_path, {"label_values": {0: "background", 255: "lesion"}})))
    assert f"{root}/labels/case04.png: label values 7, 9 are not in data.label_values; valid values: 0 (background), 255 (lesion)" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"label_values": {0: "background", "red": "lesion"}}, "data.label_values: key 'red' is neither a pixel value (0..65535) nor a colour '#rrggbb'"),
        ({"label_values": {0: "background", "#ff0000": "lesion"}}, "data.label_values: mixes pixel values and colours"),
        ({"label_values": {0: "background", 70000: "lesion"}}, "data.label_values: pixel value 70000 is outside 0..65535"),
        ({"classes": ["background", "lung"], "label_values": {0: "background", 255: "lesion"}},
         "data.label_values: class 'lesion' is not in data.classes; valid classes: background, lung"),
        ({"classes": ["a", "b"], "encoding": "multilabel", "label_values": {0: "a"}}, "data.label_values: applies to index encoding only"),
        ({}, "data.classes: the folder dataset needs the class names, e.g. [background, lesion] (or data.label_values"),
        ({"classes": ["background", "lesion"], "split": "random"}, "unknown split 'random'; valid split forms: a mapping {train: 0.8, test: 0.2, seed: 0}"),
        ({"classes": ["background", "lesion"], "split": {"by": "official", "test": 0.3}}, "the official split fixes which cases train and test; remove test"),
        ({"classes": ["background", "lesion"], "split": {"group_by": "[a-z"}}, "group_by '[a-z' is neither TABLE.csv:COLUMN nor a valid regex"),
        ({"classes": ["background", "lesion"], "split": {"group_by": "case"}}, "group_by 'case': a regex needs a group"),
        ({"classes": ["background", "lesion"], "square_fit": "stretch"}, "data.square_fit: Input should be 'pad', 'squash' or 'crop'"),
    ],
    ids=["bad-key", "mixed-keys", "value-range", "unknown-class", "multilabel", "no-classes", "bad-split", "official-shares",
         "bad-regex", "regex-without-group", "bad-square-fit"],
)
def test_bad_data_keys_fail_in_check(tmp_path, data, message):
    write_binary_folder(tmp_path / "data")
    assert message in error_of(check(pipeline(tmp_path, data)))


# --- colours ----------------------------------------------------------------------------------

RED, GREEN = (255, 0, 0), (0, 255, 0)


def write_rgb_folder(root: Path, n: int = 4, palette: bool = False) -> Path:
    """RGB (or palette) masks: a red disc and a green bar on black."""
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb = np.zeros((24, 24, 3), np.uint8)
        rgb[disc_mask(24, 24, i) > 0] = RED
        rgb[2:5, 3:20] = GREEN
        img = PILImage.fromarray(rgb)
        (img.quantize(colors=3) if palette else img).save(root / "labels" / f"m{i}.png")
    return root


COLOURS = {"#000000": "background", "#ff0000": "lesion", "#00ff00": "ruler"}


@pytest.mark.parametrize("palette", [False, True], ids=["rgb", "palette"])
def test_colour_masks_are_mapped_by_colour(tmp_path, palette):
    root = write_rgb_folder(tmp_path / "data", palette=palette)
    if palette:
        assert PILImage.open(root / "labels/m1.png").mode == "P"
    ds = load(root, label_values=COLOURS)
    ds.check()
    label = ds.native(1).label
    assert ds.spec.classes == ("background", "lesion", "ruler")
    expected_disc = disc_mask(24, 24, 1) > 0
    expected_disc[2:5, 3:20] = False
    assert np.array_equal(label[1] > 0, expected_disc)
    assert label[2].sum() == 3 * 17 and np.array_equal(label.sum(0), np.ones((24, 24)))


def test_an_rgb_mask_without_a_colour_map_fails_in_check_listing_its_colours(tmp_path):
    root = write_rgb_folder(tmp_path / "data")
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion", "ruler"]})))
    assert f"{root}/labels/m0.png: an RGB label map with colours #000000, #00ff00, #ff0000; map each colour to a class with data.label_values" in text


def test_a_colour_not_in_the_map_fails_in_check(tmp_path):
    root = write_rgb_folder(tmp_path / "data")
    text = error_of(check(pipeline(tmp_path, {"label_values": {"#000000": "background", "#ff0000": "lesion"}})))
    assert f"{root}/labels/m0.png: label colour #00ff00 is not in data.label_values; valid colours: #000000 (background), #ff0000 (lesion)" in text


def test_a_grey_mask_saved_as_rgb_is_read_as_grey(tmp_path):
    root = write_binary_folder(tmp_path / "data", images=False)
    grey = disc_mask(24, 32, 5)
    PILImage.fromarray(np.stack([grey] * 3, axis=-1)).save(root / "labels/case05.png")
    ds = load(root, classes=["background", "lesion"])
    ds.check()
    assert np.array_equal(ds.native(5).label[1] > 0, grey == 255)


# --- non-square images --------------------------------------------------------------------------


def test_non_square_images_are_padded_with_the_covered_area_as_roi(tmp_path):
    root = write_binary_folder(tmp_path / "data", h=24, w=32)
    ds = load(root, classes=["background", "lesion"])
    assert ds.square_fit == "pad"
    s = ds[0]
    assert s.image.shape == (1, 32, 32) and s.label.shape == (2, 32, 32) and s.roi.shape == (32, 32)
    # 24 rows centred in 32: rows 4..27 are the image, 4 rows of padding above and below
    assert np.array_equal(s.roi.any(axis=1), np.r_[[False] * 4, [True] * 24, [False] * 4]) and s.roi.all(axis=0).sum() == 0
    assert np.allclose(s.image[0, :4], 0) and np.allclose(s.image[0, 28:], 0)
    assert np.array_equal(s.label[0, :4], np.ones((4, 32))), "padding is background"
    assert np.array_equal(s.label[1, 4:28] > 0, disc_mask(24, 32, 0) == 255), "no resize at size 32: pixel for pixel"
    native, geometry = native_view(ds, 0)
    assert native.image.shape == (1, 24, 32) and native.label.shape == (2, 24, 32) and native.roi is None
    assert (geometry.height, geometry.width, geometry.mode, geometry.side, geometry.offset) == (24, 32, "pad", 32, (4, 0))
    view = SubsetDataset(ds, [3, 0])
    assert view.native(1).id == "case00" and view.square_fit == "pad" and view.ids == ["case03", "case00"]


def test_squash_and_crop_are_options(tmp_path):
    root = write_binary_folder(tmp_path / "data", h=24, w=32)
    squash = load(root, classes=["background", "lesion"], square_fit="squash")
    crop = load(root, classes=["background", "lesion"], square_fit="crop")
    assert squash[0].roi is None and crop[0].roi is None
    assert squash[0].label.shape == crop[0].label.shape == (2, 32, 32)
    # crop keeps the central 24 x 24 (columns 4..27), enlarged to 32
    central = torch.from_numpy((disc_mask(24, 32, 0)[:, 4:28] == 255).astype(np.float32))
    enlarged = torch.nn.functional.interpolate(central[None, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    assert np.mean((crop[0].label[1] > 0) == (enlarged.numpy() >= 0.5)) > 0.97
    assert native_view(crop, 0)[1].offset == (0, 4)


def test_square_fit_a_dataset_does_not_offer_fails_in_check(tmp_path):
    path = pipeline(tmp_path, {"dataset": "xray.phantom", "root": None, "count": 4, "size": 32, "square_fit": "crop"},
                    stages=[{"use": "core.real_labels"}, {"use": "core.lab2im"}])
    text = error_of(check(path))
    assert "data.square_fit: dataset 'xray.phantom' fits its images by 'pad' only; remove the key or set it to 'pad'" in text


def test_image_and_label_sizes_must_match_in_check(tmp_path):
    root = write_binary_folder(tmp_path / "data")
    PILImage.fromarray(np.zeros((24, 30), np.uint8)).save(root / "images/case02.png")
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"]})))
    assert f"{root}/images/case02.png: image is 30x24 but its label case02.png is 32x24; they must match" in text


def test_a_truncated_label_file_fails_in_check(tmp_path):
    root = write_binary_folder(tmp_path / "data")
    path = root / "labels/case01.png"
    path.write_bytes(path.read_bytes()[:60])
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"]})))
    assert f"{path}: cannot read label map" in text


def test_the_scan_reads_each_file_once(tmp_path, monkeypatch):
    root = write_binary_folder(tmp_path / "data", n=5)
    calls: list[str] = []
    original = folder_module.read_label_raw
    monkeypatch.setattr(folder_module, "read_label_raw", lambda path, colours=False: calls.append(Path(path).name) or original(path, colours))
    ds = load(root, classes=["background", "lesion"])
    ds.check()
    ds.check()
    assert sorted(calls) == [f"case{i:02d}.png" for i in range(5)]
    PILImage.fromarray(disc_mask(24, 32, 9, on=3)).save(root / "labels/case01.png")  # a changed file is read again
    with pytest.raises(Exception, match="case01.png: label value 3 is outside"):
        ds.check()


# --- labels-only folders ------------------------------------------------------------------------


def test_labels_only_folder_passes_check_with_lab2im(tmp_path):
    write_binary_folder(tmp_path / "data", images=False)
    result = check(pipeline(tmp_path, {"classes": ["background", "lesion"]}))
    assert result.exit_code == 0, result.output
    assert "data checked (labels only)" in result.stdout


def test_labels_only_folder_with_an_image_learning_stage_fails_in_check(tmp_path):
    root = write_binary_folder(tmp_path / "data", images=False)
    stages = [*CHAIN[:2], {"use": "gan.translator", "budget": {"steps": 2}}]
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"]}, stages)))
    assert f"stage 3 'gan.translator' learns images, but dataset 'folder' has labels only (no {root}/images folder)" in text


def test_labels_only_folder_with_evaluate_fails_in_check(tmp_path):
    write_binary_folder(tmp_path / "data", images=False)
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"]}, evaluate={})))
    assert "evaluate: segmenters are trained and scored on real images, but dataset 'folder' has labels only" in text


def test_lab2im_intensities_must_match_the_classes(tmp_path):
    write_binary_folder(tmp_path / "data", images=False)
    stages = [*CHAIN[:2], {"use": "core.lab2im", "params": {"intensities": [0.2, 0.5, 0.8]}}]
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"]}, stages)))
    assert "params.intensities: needs one value per class (2: background, lesion), got 3" in text


# --- splits -----------------------------------------------------------------------------------


def write_cases(root: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("stem", "patientid")) -> None:
    with open(root / "cases.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def test_official_split_on_a_dataset_without_one_fails_in_check(tmp_path):
    write_binary_folder(tmp_path / "data")
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"], "split": "official"})))
    assert "data.split: dataset 'folder' has no official split; valid split forms: a mapping {train: 0.8, test: 0.2, seed: 0}" in text
    assert "group_by: TABLE.csv:COLUMN" in text and "'official'" in text


def test_grouped_split_keeps_patients_whole_and_split_json_records_them(tmp_path):
    stems = [f"p{p}_{v}" for p in range(8) for v in range(p % 3 + 1)]  # 8 patients, 1-3 images each: 15 cases
    root = write_binary_folder(tmp_path / "data", stems=stems)
    write_cases(root, [(s, s.split("_")[0]) for s in stems])
    path = pipeline(tmp_path, {"classes": ["background", "lesion"], "split": {"train": 0.7, "test": 0.3, "seed": 3, "group_by": "cases.csv:patientid"}})
    prepared = prepare(path, profile="none")
    split = prepared.split
    train_patients, test_patients = set(split.groups_in(split.train)), set(split.groups_in(split.test))
    assert train_patients.isdisjoint(test_patients) and train_patients | test_patients == {f"p{p}" for p in range(8)}
    assert len(split.train) + len(split.test) == 15 and abs(len(split.test) - 4.5) <= 1.5
    state = RunState(tmp_path / "run", torch.device("cpu"))
    (tmp_path / "run").mkdir()
    split_data(prepared, state)
    assert isinstance(state.train, SubsetDataset) and state.train.native(0).label.shape == (2, 24, 32)
    record = json.loads((tmp_path / "run/split.json").read_text())
    assert record["group_by"] == "cases.csv:patientid" and record["by"] == "shuffle"
    assert set(record["groups"]["train"]) == train_patients and set(record["groups"]["test"]) == test_patients
    assert {record["group_of"][s] for s in record["test"]} == test_patients
    resolved = tmp_path / "run/pipeline.resolved.yaml"  # what --resume and msaug generate read back
    resolved.write_text(resolved_yaml(prepared))
    assert prepare(resolved, profile="none").split == split
    assert all(s.split("_")[0] in test_patients for s in record["test"])
    # the same groups from a file-name pattern
    by_name = DataConfig(dataset="folder", root=root, size=32, classes=["background", "lesion"],
                         split={"train": 0.7, "test": 0.3, "seed": 3, "group_by": r"^(p\d+)_"})
    assert split_dataset(load_dataset(by_name), by_name) == split


@pytest.mark.parametrize(
    ("table", "group_by", "message"),
    [
        (None, "cases.csv:patientid", "data.split.group_by: cases table {root}/cases.csv not found"),
        ([("case00", "1")], "cases.csv:patient", "data.split.group_by: {root}/cases.csv has no column 'patient'; columns: stem, patientid"),
        ([(f"case{i:02d}", str(i)) for i in range(5)], "cases.csv:patientid",
         "data.split.group_by: {root}/cases.csv has no 'patientid' for the sample 'case05' (rows are matched by their first column, 'stem', to the file stem)"),
        (None, r"^case0([0-4])$", "data.split.group_by: the pattern '^case0([0-4])$' does not match the sample id 'case05'"),
        ([(f"case{i:02d}", "7") for i in range(6)], "cases.csv:patientid", "data.split.group_by: every case is in the one group '7'"),
    ],
    ids=["no-table", "no-column", "no-row", "no-match", "one-group"],
)
def test_bad_group_by_fails_in_check(tmp_path, table, group_by, message):
    root = write_binary_folder(tmp_path / "data")
    if table is not None:
        write_cases(root, table)
    text = error_of(check(pipeline(tmp_path, {"classes": ["background", "lesion"], "split": {"group_by": group_by}})))
    assert f"{tmp_path / 'p.yaml'}: " + message.format(root=root) in text


def test_shuffle_split_is_unchanged(tmp_path):
    """Without group_by the split is the seeded case shuffle of split_indices, as before."""
    from msaug.data import SplitConfig, split_indices

    root = write_binary_folder(tmp_path / "data", n=10)
    config = DataConfig(dataset="folder", root=root, size=32, classes=["background", "lesion"], split={"train": 0.7, "test": 0.3, "seed": 5})
    split = split_dataset(load_dataset(config), config)
    assert {"train": split.train, "test": split.test} == split_indices(10, SplitConfig(train=0.7, test=0.3, seed=5))
    assert split.groups is None and split.by == "shuffle"
    assert DataConfig(dataset="folder", split="official").split.by == "official"
    assert DataConfig(dataset="folder", split={"by": "official"}).split.by == "official"


# --- real data ----------------------------------------------------------------------------------

CXR_KNOWN = "1-s2.0-S0085253820303616-gr1_lrg-a"  # 512 x 436, patient 320


@pytest.mark.realdata
def test_cxr_lungs_loads_0_255_masks_with_no_value_map_and_pads(real_data):
    root = real_data("cxr-lungs")
    ds = load_dataset(DataConfig(dataset="folder", root=root, size=128, classes=["background", "lung"]))
    assert len(ds) == 288 and ds.spec.classes == ("background", "lung")
    ds.check()
    started = time.perf_counter()
    ds.check()
    assert time.perf_counter() - started < 0.5, "the second scan is served from the cache"
    i = ds.stems.index(CXR_KNOWN)
    native = ds.native(i)
    assert native.image.shape == (1, 436, 512) and native.label.shape == (2, 436, 512)
    assert int(native.label[1].sum()) == 64025  # pixels of value 255 in the file
    s = ds[i]
    assert s.image.shape == (1, 128, 128) and s.label.shape == (2, 128, 128)
    # 436 rows centred in 512 (38 rows of padding above and below): about 110 of 128 rows covered
    assert s.roi.any(axis=1).sum() == 110 and s.roi.all(axis=0).sum() == 0 and s.roi.any(axis=0).all()
    assert np.allclose(s.image[0, :9], 0) and s.label[0, :9].all()


@pytest.mark.realdata
def test_cxr_lungs_patient_grouped_split_has_no_patient_in_both_halves(real_data, tmp_path):
    root = real_data("cxr-lungs")
    path = tmp_path / "cxr.yaml"
    path.write_text(yaml.safe_dump({
        "name": "cxr", "stages": CHAIN,
        "data": {"dataset": "folder", "root": "$MSAUG_DATA/cxr-lungs", "size": 32, "classes": ["background", "lung"],
                 "split": {"test": 0.2, "group_by": "cases.csv:patientid"}},
    }))
    prepared = prepare(path, profile="none")
    split = prepared.split
    with open(root / "cases.csv", newline="") as fh:
        patient = {row["stem"]: row["patientid"] for row in csv.DictReader(fh)}
    ids = prepared.dataset.ids
    train, test = {patient[ids[i]] for i in split.train}, {patient[ids[i]] for i in split.test}
    assert train.isdisjoint(test) and len(train | test) == 181
    assert len(split.train) + len(split.test) == 288 and abs(len(split.test) - 0.2 * 288) <= 3


def test_split_fraction_keeps_a_seeded_subset_of_the_training_cases(tmp_path):
    from msaug.data import Split, train_fraction

    full = Split(list(range(20)), [20, 21, 22, 23])
    tenth = train_fraction(full, 0.1, seed=0)
    assert len(tenth.train) == 2 and set(tenth.train) <= set(full.train) and tenth.test == full.test
    assert tenth == train_fraction(full, 0.1, seed=0) and tenth.train != train_fraction(full, 0.1, seed=1).train
    assert tenth.fraction == 0.1 and "(0.1 of the training cases)" in tenth.describe()
    assert train_fraction(full, 0.01, seed=0).train.__len__() == 1  # never empty
    assert train_fraction(full, 1.0, seed=0) is full
    # whole groups: 4 patients of 2, 3, 1 and 4 cases; 30 % of 10 cases is 3 cases of whole patients
    groups = ["a", "a", "b", "b", "b", "c", "d", "d", "d", "d", "e", "e"]
    grouped = Split(list(range(10)), [10, 11], "shuffle", groups)
    for seed in range(5):
        part = train_fraction(grouped, 0.3, seed)
        kept = set(part.groups_in(part.train))
        assert all(i in part.train for i in range(10) if groups[i] in kept), "a kept patient is kept whole"
        assert abs(len(part.train) - 3) <= 1 and "e" not in kept


def test_split_fraction_applies_to_grouped_folders_and_split_json_records_it(tmp_path):
    stems = [f"p{p}_{v}" for p in range(8) for v in range(p % 3 + 1)]
    root = write_binary_folder(tmp_path / "data", stems=stems)
    write_cases(root, [(s, s.split("_")[0]) for s in stems])
    base = {"train": 0.7, "test": 0.3, "seed": 3, "group_by": "cases.csv:patientid"}
    full = prepare(pipeline(tmp_path, {"classes": ["background", "lesion"], "split": base}), profile="none").split
    path = pipeline(tmp_path, {"classes": ["background", "lesion"], "split": {**base, "fraction": 0.5}})
    prepared = prepare(path, profile="none")
    half = prepared.split
    assert half.test == full.test and set(half.train) < set(full.train)
    assert abs(len(half.train) - len(full.train) / 2) <= 2
    state = RunState(tmp_path / "run", torch.device("cpu"))
    (tmp_path / "run").mkdir()
    split_data(prepared, state)
    record = json.loads((tmp_path / "run/split.json").read_text())
    assert record["fraction"] == 0.5 and len(record["train"]) == len(half.train)
    result = check(pipeline(tmp_path, {"classes": ["background", "lesion"], "split": {**base, "fraction": 0}}))
    assert result.exit_code == 2 and "data.split.fraction" in error_of(result)
