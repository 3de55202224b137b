"""``msaug data verify``: every problem listed at once, extra files found, bad options named, nnU-Net folders, lossy labels."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image as PILImage

from msaug.cli import cli
from msaug.data import DataConfig, load_dataset
from msaug.label_values import LossyLabelWarning
from msaug.pipeline.runner import RunOptions, run_pipeline
from msaug.verify import verify_target
from tests.conftest import CLASSIC, write_folder_dataset

CLASSES = "background,disc,square"


def verify(*args: str):
    return CliRunner().invoke(cli, ["data", "verify", *args])


def text_of(output: str) -> str:
    return " ".join(output.split())


def user_error(result) -> str:
    """The one error line of a refused verify: exit 2, no traceback, no pydantic dump."""
    assert result.exit_code == 2, result.output
    text = text_of(result.stderr)
    assert "Traceback" not in result.output and "internal error" not in text and "ValidationError" not in text, text
    assert text.count("error:") == 1, text
    return text


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One small run for the whole module (each test gets its own copy)."""
    base = tmp_path_factory.mktemp("classic")
    write_folder_dataset(base / "data")
    (base / "classic.yaml").write_text(yaml.safe_dump(CLASSIC, sort_keys=False))
    run_pipeline(base / "classic.yaml", RunOptions(out=base / "run", profile="quick", show_progress=False))
    return base / "run"


@pytest.fixture
def run_dir(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


# --- case 12: options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--channels", "9"], "--channels 9: must be at most 4 (valid: 1..4)"),
        (["--channels", "0"], "--channels 0: must be at least 1 (valid: 1..4)"),
    ],
)
def test_out_of_range_folder_options_name_the_option_and_range(shapes_dir, args, message):
    assert message in user_error(verify(str(shapes_dir), "--classes", CLASSES, *args))


@pytest.mark.parametrize(
    "value, message",
    [("1000000", "--size 1000000: must be at most 8192 (valid: 8..8192)"), ("0", "--size 0: must be at least 8 (valid: 8..8192)")],
)
def test_out_of_range_size_names_the_option_and_range(value, message):
    assert message in user_error(verify("xray.phantom", "--size", value))


def test_option_without_value_is_reported_as_option():
    text = user_error(verify("xray.phantom", "--option", "bogus"))
    assert "--option 'bogus': expected KEY=VALUE" in text and "--set" not in text


def test_options_that_do_not_apply_to_the_target_are_refused(run_dir, shapes_dir):
    text = user_error(verify(str(run_dir), "--size", "64"))
    assert f"--size does not apply to a run folder ({run_dir})" in text
    text = user_error(verify(str(shapes_dir), "--classes", CLASSES, "--root", "/elsewhere"))
    assert "--root does not apply to a plain folder" in text


# --- case 13: missing paths and nnU-Net folders --------------------------------------------------


def test_missing_path_says_it_is_missing(tmp_path):
    missing = tmp_path / "missing" / "path"
    text = user_error(verify(str(missing)))
    assert f"{missing}: no such file or folder" in text and "unknown dataset" not in text


def test_unknown_bare_name_says_neither_path_nor_dataset():
    text = user_error(verify("xray.phantm"))
    assert "'xray.phantm' is neither a file or folder nor a registered dataset" in text
    assert "Did you mean 'xray.phantom'?" in text


def write_nnunet(root: Path, cases: int = 3, size: int = 16, rgb: bool = False) -> Path:
    """A hand-written nnU-Net v2 raw dataset: imagesTr/{case}_0000.png, labelsTr/{case}.png, dataset.json."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for i in range(cases):
        label = np.zeros((size, size), np.uint8)
        label[2:8, 2:8] = 1
        label[10:14, 10:14] = 2
        shape = (size, size, 3) if rgb else (size, size)
        PILImage.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / "imagesTr" / f"case{i:03d}_0000.png")
        PILImage.fromarray(label).save(root / "labelsTr" / f"case{i:03d}.png")
    channels = {"0": "R", "1": "G", "2": "B"} if rgb else {"0": "CT"}
    meta = {"channel_names": channels, "labels": {"background": 0, "liver": 1, "tumour": 2}, "numTraining": cases, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_nnunet_folder_is_verified_without_asking_for_msaug_fields(tmp_path):
    root = write_nnunet(tmp_path / "Dataset007_Liver")
    result = verify(str(root))
    assert result.exit_code == 0, result.output
    assert f"ok: nnU-Net dataset {root}: 3 items checked, no problems" in text_of(result.stdout)
    assert "classes" not in result.output
    rgb = write_nnunet(tmp_path / "Dataset008_Photos", rgb=True)  # one RGB file holds channels R, G, B
    assert verify_target(str(rgb)).ok


def test_nnunet_export_of_a_run_verifies(run_dir, tmp_path):
    from msaug.segment.export import export_nnunet

    target = export_nnunet(run_dir / "synthetic", tmp_path / "nnUNet_raw", 1, "shapes")
    report = verify_target(str(target))
    assert report.kind == "nnU-Net dataset" and report.ok, report.problems
    assert report.checked == 6


def test_nnunet_problems_are_all_listed(tmp_path):
    root = write_nnunet(tmp_path / "Dataset009_Bad", cases=4)
    PILImage.fromarray(np.full((16, 16), 7, np.uint8)).save(root / "labelsTr/case000.png")
    (root / "imagesTr/case001_0000.png").unlink()
    PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(root / "imagesTr/case002_0000.png")
    (root / "labelsTr/case003.png").write_bytes(b"garbage")
    PILImage.fromarray(np.zeros((16, 16), np.uint8)).save(root / "imagesTr/orphan_0000.png")
    (root / "imagesTr/notes.txt").write_text("to do")
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "numTraining": 5}))
    report = verify_target(str(root))
    problems = "\n".join(report.problems)
    assert report.checked == 4
    assert f"{root}/labelsTr/case000.png: label value 7 is not in dataset.json's labels (valid: 0, 1, 2)" in problems
    assert f"{root}/imagesTr/case001_0000.png: missing (labelsTr/case001.png needs 1 channel)" in problems
    assert f"{root}/imagesTr/case002_0000.png: image is 8x8 but its label case002.png is 16x16" in problems
    assert f"{root}/labelsTr/case003.png: cannot read label map" in problems
    assert f"{root}/imagesTr/orphan_0000.png: image without a label (no labelsTr/orphan.png)" in problems
    assert f"{root}/dataset.json: numTraining is 5 but labelsTr holds 4 cases" in problems
    assert len(report.problems) == 6
    assert report.warnings == [f"{root}/imagesTr/notes.txt: not a .png file; nnU-Net ignores it"]
    result = verify(str(root))
    assert result.exit_code == 1 and "6 problems in 4 items" in text_of(result.stdout)


def test_nnunet_without_its_required_fields_lists_them(tmp_path):
    root = write_nnunet(tmp_path / "Dataset010_Half")
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "x": 1}}))
    report = verify_target(str(root))
    assert report.problems == [f"{root}/dataset.json: missing channel_names, numTraining, file_ending (nnU-Net v2 needs channel_names, labels, numTraining and file_ending)"]


# --- case 14: extra files, every manifest line, counts -------------------------------------------


def test_folder_extra_files_are_reported(shapes_dir):
    PILImage.open(shapes_dir / "images/case000.png").save(shapes_dir / "images/case099.png")
    PILImage.open(shapes_dir / "labels/case000.png").save(shapes_dir / "labels/case100.png")
    (shapes_dir / "labels/notes.txt").write_text("annotator: A")
    report = verify_target(str(shapes_dir), classes=CLASSES.split(","))
    assert report.problems == [
        f"{shapes_dir}/images/case099.png: image without a label (no labels/case099.*)",
        f"{shapes_dir}/labels/case100.png: label without an image (no images/case100.*)",
    ]
    assert report.warnings == [f"{shapes_dir}/labels/notes.txt: not an image file; the folder dataset ignores it"]
    assert report.checked == 9  # the eight pairs and the stray label, each read


def test_unreadable_items_are_counted(shapes_dir):
    for path in (shapes_dir / "images").iterdir():
        path.write_bytes(b"nonsense")
    result = verify(str(shapes_dir), "--classes", CLASSES)
    assert result.exit_code == 1
    assert "8 problems in 8 items" in text_of(result.stdout)


def test_synthetic_lists_every_bad_manifest_line_and_orphan(run_dir):
    synthetic = run_dir / "synthetic"
    manifest = synthetic / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lines[1], lines[3] = "{not json", json.dumps({"index": 3})
    manifest.write_text("\n".join(lines) + "\n")
    shutil.copy(synthetic / "images/000000.png", synthetic / "images/000042.png")
    (synthetic / "labels/notes.txt").write_text("x")
    report = verify_target(str(synthetic))
    problems = report.problems
    assert report.checked == 6
    assert problems[0].startswith(f"{manifest}:2: not a valid manifest line")
    assert problems[1].startswith(f"{manifest}:4: not a valid manifest line")
    assert f"{synthetic}/images/000042.png: not listed in manifest.jsonl (an orphan pair file)" in problems
    # the pairs of the bad lines are orphans too: their files are no longer listed
    assert f"{synthetic}/images/000001.png: not listed in manifest.jsonl (an orphan pair file)" in problems
    assert report.warnings == [f"{synthetic}/labels/notes.txt: not an image file; not part of the synthetic dataset"]
    result = verify(str(synthetic))
    assert result.exit_code == 1 and f"{len(problems)} problems in 6 items" in text_of(result.stdout)


def test_truncated_manifest_leaves_orphans_that_verify_reports(run_dir):
    """Issue 15, case 1: a manifest cut to fewer lines must not verify as ok."""
    manifest = run_dir / "synthetic/manifest.jsonl"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:2]))
    report = verify_target(str(run_dir))
    orphans = [p for p in report.problems if "not listed in manifest.jsonl" in p]
    assert len(orphans) == 8  # pairs 2..5, image and label each


def test_manifest_paths_outside_the_folder_are_problems(run_dir):
    manifest = run_dir / "synthetic/manifest.jsonl"
    lines = manifest.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["image"] = "../../outside.png"
    lines[0] = json.dumps(entry)
    manifest.write_text("\n".join(lines) + "\n")
    report = verify_target(str(run_dir / "synthetic"))
    assert any(p.startswith(f"{manifest}:1: image path '../../outside.png' is outside") for p in report.problems)


# --- case 14: lossy label formats ----------------------------------------------------------------


def write_jpeg_labels(root: Path, n: int = 4) -> Path:
    """Labels saved as JPEG: the 2x2 class-2 spot is erased by the compression, yet every value stays valid."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        label = np.zeros((32, 32), np.uint8)
        label[8:24, 8:24] = 1
        label[14:16, 14:16] = 2
        PILImage.fromarray(label).save(root / "labels" / f"case{i}.jpg", quality=75)
        PILImage.fromarray((label * 100).astype(np.uint8)).save(root / "images" / f"case{i}.png")
    assert 2 not in np.unique(np.asarray(PILImage.open(root / "labels/case0.jpg")))
    return root


def test_jpeg_labels_warn_in_verify(tmp_path):
    root = write_jpeg_labels(tmp_path / "data")
    result = verify(str(root), "--classes", CLASSES)
    assert result.exit_code == 0, result.output
    text = text_of(result.stdout)
    assert f"{root}/labels: 4 label maps stored as JPEG (case0.jpg, case1.jpg, case2.jpg ...)" in text
    assert "small classes can vanish" in text and "ok: folder dataset" in text and "(1 warning)" in text


def test_jpeg_labels_warn_when_the_folder_dataset_loads(tmp_path):
    root = write_jpeg_labels(tmp_path / "data")
    with pytest.warns(LossyLabelWarning, match=r"4 label maps stored as JPEG"):
        load_dataset(DataConfig(dataset="folder", root=root, size=32, classes=CLASSES.split(",")))


def test_jpeg_labels_warn_once_in_pipeline_check(tmp_path):
    root = write_jpeg_labels(tmp_path / "data", n=8)
    cfg = {**CLASSIC, "data": {**CLASSIC["data"], "root": str(root)}}
    path = tmp_path / "jpeg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = CliRunner().invoke(cli, ["pipeline", "check", str(path), "--profile", "none"])
    assert result.exit_code == 0, result.output
    text = text_of(result.stderr)
    assert text.count("warning:") == 1 and "8 label maps stored as JPEG" in text, text
    assert "LossyLabelWarning" not in text and "warnings.warn" not in text


def test_png_labels_do_not_warn(shapes_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossyLabelWarning)
        load_dataset(DataConfig(dataset="folder", root=shapes_dir, size=32, classes=CLASSES.split(",")))
    assert verify_target(str(shapes_dir), classes=CLASSES.split(",")).warnings == []
