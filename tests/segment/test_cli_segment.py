"""The segment and export commands, through the main msaug group."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from msaug.cli import cli
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.synthetic import SyntheticWriter, read_manifest


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_segment_list_shows_smp_architectures():
    result = run("segment", "list", "--json")
    assert result.exit_code == 0
    names = {e["name"] for e in json.loads(result.output)}
    assert {"unet", "fpn", "segformer"} <= names


def test_non_real_protocol_without_synthetic_is_a_clear_error(tmp_path):
    result = run("segment", "train", "--data", "fundus.phantom", "--protocol", "mix", "--out", tmp_path)
    assert result.exit_code == 2
    assert "--protocol mix needs --synthetic SYNTH_DIR" in result.output


@pytest.mark.slow
def test_train_then_eval_on_a_phantom(tmp_path):
    common = ["--data", "fundus.phantom", "--size", "32", "--count", "6", "--test-share", "0.5"]
    result = run("segment", "train", *common, "--encoder", "tu-resnet10t", "--steps", "2", "--batch-size", "2",
                 "--out", tmp_path, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "real" / "checkpoint" / "segmenter.safetensors").is_file()
    assert "| real |" in (tmp_path / "report.md").read_text()
    trained = json.loads((tmp_path / "evaluation.json").read_text())["protocols"]["real"]["metrics"]
    result = run("segment", "eval", "--checkpoint", tmp_path / "real" / "checkpoint", *common, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    assert evaluated["images"] == 3
    assert evaluated["mean"]["dice"]["mean"] == pytest.approx(trained["mean"]["dice"]["mean"])


def test_seg_size_takes_an_int_or_native(tmp_path):
    result = run("segment", "train", "--data", "fundus.phantom", "--seg-size", "original", "--out", tmp_path)
    assert result.exit_code == 2
    assert "'original' is neither 'native' nor an int" in result.output
    result = run("segment", "train", "--data", "fundus.phantom", "--patch", "8", "--out", tmp_path)
    assert result.exit_code == 2 and "--patch" in result.output


@pytest.mark.slow
def test_train_on_patches_then_eval_with_another_window(tmp_path):
    common = ["--data", "fundus.phantom", "--size", "64", "--count", "6", "--test-share", "0.5"]
    result = run("segment", "train", *common, "--seg-size", "native", "--patch", "32", "--window-overlap", "0.5",
                 "--encoder", "tu-resnet10t", "--steps", "2", "--batch-size", "2", "--out", tmp_path, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["segmenter"]["size"] == 64 and evaluation["segmenter"]["patch"] == 32
    assert evaluation["resolution"]["patch"] == 32 and evaluation["resolution"]["window_overlap"] == 0.5
    assert "32 px patches, sliding-window prediction (overlap 0.5)" in (tmp_path / "report.md").read_text()
    trained = evaluation["protocols"]["real"]["metrics"]
    checkpoint = tmp_path / "real" / "checkpoint"
    result = run("segment", "eval", "--checkpoint", checkpoint, *common, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    assert evaluated["mean"]["dice"]["mean"] == pytest.approx(trained["mean"]["dice"]["mean"])
    assert evaluated["resolution"]["patch"] == 32 and evaluated["resolution"]["metrics_at"] == "native"
    result = run("segment", "eval", "--checkpoint", checkpoint, *common, "--json", "--device", "cpu", "--patch", "64",
                 "--metrics-at", "segmenter")
    assert result.exit_code == 0, result.output
    whole = json.loads(result.output)["resolution"]
    assert whole["patch"] is None and whole["description"].startswith("at the segmenter's size, 64 x 64 px")


def test_qc_then_filtered_exports(tmp_path, toy):
    pairs = toy(4, 32)
    synth = tmp_path / "synthetic"
    writer = SyntheticWriter(synth, pairs.spec, bit_depth=8)
    writer.finalize({i: writer.write_pair(i, torch.as_tensor(pairs[i].image), torch.as_tensor(pairs[i].label), i, {}) for i in range(4)})
    Segmenter(SegmenterInfo.for_spec(pairs.spec, "unet", "tu-resnet10t", 32)).save(tmp_path / "ckpt")

    result = run("segment", "qc", synth, "--checkpoint", tmp_path / "ckpt", "--device", "cpu")
    assert result.exit_code == 0, result.output
    scores = [e["qc_dice"] for e in read_manifest(synth)]
    assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores)

    result = run("export", "nnunet", synth, "--out", tmp_path / "raw", "--dataset-id", "12", "--name", "Toy", "--qc-min-dice", "0")
    assert result.exit_code == 0, result.output
    assert "4 training cases" in result.output
    result = run("export", "monai", synth, "--out", tmp_path / "list.json", "--qc-min-dice", "1.01")
    assert result.exit_code == 2  # out of range: click rejects it
    result = run("export", "nnunet", synth, "--out", tmp_path / "raw", "--dataset-id", "12", "--name", "Toy")
    assert result.exit_code == 2 and "already exists" in result.output
