"""benchmarks/gpu_check.py: the GPU check's sections, JSON and table, run with its tiny CPU plan."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
FAMILIES = ("label_generator", "label_upscaler", "translator")
SECTIONS = ["train", "generate", "bare_ratio", "ddp"]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the table under ``## heading``, split into cells."""
    part = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in part.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[2:]]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_tiny_check_measures_every_family_size_and_chain(gpu_check, tmp_path, capsys, restore_threads):
    out = tmp_path / "check"
    # one thread: several threads on a loaded 2-core machine spin against each other (150 s instead of 15 s)
    assert gpu_check.main(["--out", str(out), "--tiny", "--threads", "1", "--max-seconds", "100000"]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    markdown = (out / "gpu_check.md").read_text()
    assert capsys.readouterr().out == markdown  # the table is printed as written

    assert list(report["sections"]) == SECTIONS
    assert report["device"]["type"] == "cpu" and report["device"]["name"] and report["device"]["threads"] == 1
    assert report["torch"] == torch.__version__
    assert report["dtype"] == "float32" and report["channels_last"] is False  # bf16 and channels_last are CUDA-only
    assert report["sizes"] == [32, 64] and report["steps"] == {"warmup": 1, "timed": 2, "final_untimed": 1}
    assert report["pipelines"] == {"xray": ["xray.yaml"], "fundus": ["fundus.yaml", "drive.yaml"]}

    train = report["sections"]["train"]
    assert train["status"] == "ok"
    got = {(r["chain"], r["family"], r["size"]) for r in train["rows"]}
    assert got == {(c, f, s) for c in ("xray", "fundus") for f in FAMILIES for s in (32, 64)}
    for row in train["rows"]:
        assert row["status"] == "ok", row
        assert row["steps_done"] == row["steps_planned"] == 4 and row["timed_steps"] == 2
        assert row["steps_per_s"] > 0 and row["images_per_s"] == pytest.approx(row["steps_per_s"] * 2, rel=0.01)
        assert row["peak_memory_bytes"] > 0 and row["memory_floor_bytes"] > 0
        assert row["width"] == 8 and row["batch_size"] == 2 and row["dtype"] == "float32"
    sizes = {(r["chain"], r["stage"], r["size"]): r["output"] for r in train["rows"]}
    assert "16 px" in sizes["xray", "anatomy_mask", 64] and "64 px" in sizes["xray", "mask_upscale", 64]  # 128/512 of data.size

    generate = report["sections"]["generate"]
    assert generate["status"] == "ok" and len(generate["rows"]) == 4
    for row in generate["rows"]:
        assert row["status"] == "ok" and row["pairs"] == 4
        assert row["pairs_per_s"] > 0 and row["chain_pairs_per_s"] > 0
    assert generate["rows"][0]["stages"] == "xray.anatomy_mask -> xray.mask_upscale -> xray.image"

    (ratio,) = report["sections"]["bare_ratio"]["rows"]
    assert ratio["status"] == "ok" and ratio["family"] == "translator" and ratio["rounds"] == 1
    assert ratio["bare_s_per_step"] > 0 and ratio["trainer_s_per_step"] > 0 and ratio["ratio"] > 0

    ddp = report["sections"]["ddp"]
    assert ddp["status"] == "skipped" and "2 CUDA devices" in ddp["skipped"] and ddp["rows"] == []

    trained = _table_rows(markdown, "Training")
    assert {(r[2], r[3]) for r in trained} == {(f, str(s)) for f in FAMILIES for s in (32, 64)}
    assert len(trained) == 12 and all(r[-1] == "ok" for r in trained)
    assert len(_table_rows(markdown, "Generation")) == 4
    assert "Skipped: the check runs on cpu" in markdown


@pytest.mark.slow
def test_time_guard_marks_what_it_cuts(gpu_check, tmp_path, capsys):
    out = tmp_path / "check"
    assert gpu_check.main(["--out", str(out), "--tiny", "--sizes", "32", "--max-seconds", "0.01"]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    sections = report["sections"]
    assert list(sections) == SECTIONS
    for name in ("train", "generate", "bare_ratio"):
        assert sections[name]["status"] == "cut_short" and sections[name]["cut"], name
    assert len(sections["train"]["rows"]) == 6 and len(sections["generate"]["rows"]) == 2  # kept, not dropped
    assert all(r["status"] == "cut_short" and r["note"].startswith("not started") for r in sections["train"]["rows"])
    assert "cut_short (not started" in (out / "gpu_check.md").read_text()


@pytest.mark.slow
def test_ddp_section_runs_two_gloo_processes_through_the_trainer(gpu_check, tmp_path):
    section = gpu_check.Section("ddp", 300.0)
    rows, skipped = gpu_check.ddp_section("gloo", torch.device("cpu"), {"width": 4, "batch_size": 2}, 32,
                                          gpu_check.TINY_PLAN, section, tmp_path)
    assert skipped is None
    (row,) = rows
    assert row["status"] == "ok", row
    assert row["world_size"] == 2 and row["backend"] == "gloo" and row["steps_done"] == 4
    assert row["steps_per_s"] > 0 and row["images_per_s"] == pytest.approx(row["steps_per_s"] * 4, rel=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_device_cuda_without_a_gpu_is_one_clear_error(gpu_check, tmp_path, capsys):
    out = tmp_path / "check"
    assert gpu_check.main(["--out", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: device 'cuda' was asked for but no CUDA GPU is available")
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "error: --steps 0: must be at least 1"),
        (["--sizes", "30"], "error: --sizes 30: a size must be a multiple of 4 and at least 32 px"),
        (["--max-seconds", "0"], "error: --max-seconds 0: must be positive"),
        (["--threads", "0"], "error: --threads 0: must be at least 1"),
        ([], "error: --out DIR is required"),
        (["--out", "FILE"], "error: --out FILE: exists and is not a folder"),
    ],
)
def test_bad_options_exit_2_with_one_message(gpu_check, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    Path("FILE").write_text("x")
    full = argv if "--out" in argv or not argv else ["--out", "check", *argv]
    assert gpu_check.main(["--device", "cpu", *full]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err
    assert not Path("check").exists() and Path("FILE").read_text() == "x"


def test_drive_full_profile_trains_the_fundus_stages():
    """The check covers drive.yaml through fundus.yaml: their full-profile stages must stay the same."""
    fundus, drive = (yaml.safe_load((ROOT / "pipelines" / name).read_text()) for name in ("fundus.yaml", "drive.yaml"))
    assert drive["stages"] == fundus["stages"]
    full = {k: v for k, v in fundus["profiles"]["full"].items() if k.startswith(("stages.", "data.size"))}
    assert full == {k: v for k, v in drive["profiles"]["full"].items() if k.startswith(("stages.", "data.size"))}
