"""Each training protocol on tiny data, resuming, and the report table."""

from __future__ import annotations

import pytest
import torch

from msaug import ConfigError
from msaug.pipeline.schema import EvaluateConfig
from msaug.segment.data import to_tensors
from msaug.segment.evaluate import evaluate_pipeline, format_markdown
from msaug.segment.protocols import run_protocol, validation_split
from msaug.segment.segmenter import SegmenterInfo
from msaug.segment.train import TrainSettings

TINY = {"arch": "unet", "encoder": "tu-resnet10t", "steps": 2, "batch_size": 2, "size": 32}


def test_all_protocols_run_report_and_resume(tmp_path, toy):
    train, test, synthetic = toy(8, 32, seed=0), toy(3, 32, seed=1), toy(6, 32, seed=2)
    config = EvaluateConfig(segmenter=TINY, protocols=["mix", "real", "synth", "synth_finetune"], mix_ratio=0.5, qc_min_dice=0.0)
    result = evaluate_pipeline(config, train.spec, train, test, synthetic, tmp_path, torch.device("cpu"), seed=3, show_progress=False)

    assert list(result["protocols"]) == ["real", "mix", "synth", "synth_finetune"]  # the QC reference runs first
    assert result["pairs"] == {"train": 7, "validation": 1, "test": 3, "synthetic": 6}
    for name, protocol in result["protocols"].items():
        metrics = protocol["metrics"]
        assert metrics["images"] == 3 and metrics["foreground"] == ["disc"]
        assert 0.0 <= metrics["mean"]["dice"]["mean"] <= 1.0
        assert len(metrics["per_image_dice"]) == 3 and sum(metrics["per_image_dice"]) / 3 == pytest.approx(metrics["mean"]["dice"]["mean"])
        assert 1 <= protocol["training"]["best_step"] <= 2
        assert (tmp_path / name / "checkpoint" / "segmenter.safetensors").is_file()
        assert (tmp_path / name / "result.json").is_file()
    assert result["qc"]["total"] == 6 and result["qc"]["kept"] == 6
    assert set(result["qc"]["scores"]) == {f"toy-2-{i:03d}" for i in range(6)}
    assert result["memorisation"]["pairs"] == 6
    assert "precision" in result["label_realism"]["nearest_neighbour_iou"]
    assert "encoder_fd" in result["image_realism"]
    assert (tmp_path / "evaluation.json").is_file()

    markdown = format_markdown(result)
    for name in result["protocols"]:
        assert f"| {name} | " in markdown
    assert "Memorisation audit" in markdown and "Pair QC" in markdown
    assert list(result["paired"]) == ["mix", "synth", "synth_finetune"]  # each against real, on the same 3 test images
    for name, row in result["paired"].items():
        ours, real = result["protocols"][name]["metrics"]["per_image_dice"], result["protocols"]["real"]["metrics"]["per_image_dice"]
        assert row["images"] == 3 and row["mean_difference"] == pytest.approx(sum(ours) / 3 - sum(real) / 3)
        assert row["better"] + row["worse"] + row["tied"] == 3
        assert f"| {name} | {row['mean_difference']:+.4f} |" in markdown

    stamp = (tmp_path / "mix" / "checkpoint" / "segmenter.safetensors").stat().st_mtime_ns
    again = evaluate_pipeline(config, train.spec, train, test, synthetic, tmp_path, torch.device("cpu"), seed=3, show_progress=False)
    assert (tmp_path / "mix" / "checkpoint" / "segmenter.safetensors").stat().st_mtime_ns == stamp  # resumed, not retrained
    assert again["protocols"]["mix"] == result["protocols"]["mix"]


def test_reuse_real_copies_a_matching_reference_and_retrains_otherwise(tmp_path, toy):
    train, test, synthetic = toy(6, 32, seed=0), toy(2, 32, seed=1), toy(4, 32, seed=2)
    config = EvaluateConfig(segmenter=TINY, protocols=["real", "mix"])
    first = evaluate_pipeline(config, train.spec, train, test, synthetic, tmp_path / "a", torch.device("cpu"), seed=3, show_progress=False)
    stamp = (tmp_path / "a/real/checkpoint/segmenter.safetensors").read_bytes()
    reuse = EvaluateConfig(segmenter=TINY, protocols=["real", "mix"], reuse_real=tmp_path / "a")
    second = evaluate_pipeline(reuse, train.spec, train, test, synthetic, tmp_path / "b", torch.device("cpu"), seed=3, show_progress=False)
    assert (tmp_path / "b/real/checkpoint/segmenter.safetensors").read_bytes() == stamp  # copied, not retrained
    assert second["protocols"]["real"]["metrics"] == first["protocols"]["real"]["metrics"]
    assert second["protocols"]["real"]["reused_from"] == str((tmp_path / "a/real").resolve())
    assert "reused_from" not in first["protocols"]["real"]
    assert second["qc"]["scores"] == first["qc"]["scores"]  # the same reference scores the pairs
    # another seed is another key: trained here, and the other run's folder is untouched
    third = evaluate_pipeline(reuse, train.spec, train, test, synthetic, tmp_path / "c", torch.device("cpu"), seed=4, show_progress=False)
    assert "reused_from" not in third["protocols"]["real"]
    assert (tmp_path / "a/real/checkpoint/segmenter.safetensors").read_bytes() == stamp
    with pytest.raises(ValueError, match="is not a folder"):
        EvaluateConfig(segmenter=TINY, reuse_real=tmp_path / "missing")


def test_protocols_needing_synthetic_data_say_so(tmp_path, toy):
    train, test = toy(4, 32, seed=0), toy(2, 32, seed=1)
    config = EvaluateConfig(segmenter=TINY, protocols=["real", "synth"])
    with pytest.raises(ConfigError, match=r"\['synth'\] need synthetic pairs"):
        evaluate_pipeline(config, train.spec, train, test, None, tmp_path, torch.device("cpu"), 0, show_progress=False)
    with pytest.raises(ConfigError, match="test split is empty"):
        evaluate_pipeline(config, train.spec, train, toy(0, 32), None, tmp_path, torch.device("cpu"), 0, show_progress=False)


def test_finetune_splits_the_same_budget(toy):
    real = to_tensors(toy(6, 32, seed=0), 32)
    synth = to_tensors(toy(6, 32, seed=1), 32)
    info = SegmenterInfo.for_spec(toy(1, 32).spec, "unet", "tu-resnet10t", 32)
    settings = TrainSettings(steps=4, batch_size=2, eval_every=1, show_progress=False)
    _, summary = run_protocol("synth_finetune", info, real, real, synth, settings)
    assert [h["step"] for h in summary.history] == [1, 2, 3, 4]  # 2 pre-training + 2 fine-tuning steps
    assert 3 <= summary.best_step <= 4


def test_validation_split_is_deterministic_and_disjoint():
    train, val = validation_split(20, seed=1)
    assert len(val) == 3 and not set(train) & set(val) and sorted(train + val) == list(range(20))
    assert validation_split(20, seed=1) == (train, val)
    assert validation_split(2) == ([0, 1], [])


@pytest.mark.slow
def test_real_protocol_learns_the_toy_task(toy):
    """Not just "it ran": a few dozen steps must segment bright discs well."""
    torch.manual_seed(0)
    train, test = toy(16, 32, seed=0), toy(6, 32, seed=1)
    real, test_t = to_tensors(train, 32), to_tensors(test, 32)
    info = SegmenterInfo.for_spec(train.spec, "unet", "tu-resnet10t", 32)
    settings = TrainSettings(steps=80, batch_size=4, show_progress=False, eval_every=20)
    segmenter, summary = run_protocol("real", info, real, test_t, None, settings)
    from msaug.segment.evaluate import test_metrics

    assert test_metrics(segmenter, test_t)["mean"]["dice"]["mean"] > 0.85
    assert summary.best_val_dice is not None and summary.best_val_dice > 0.85


def test_a_qc_threshold_that_removes_every_pair_names_their_scores_and_keeps_the_real_segmenter(tmp_path, toy):
    train, test, synthetic = toy(6, 32, seed=0), toy(2, 32, seed=1), toy(4, 32, seed=2)
    config = EvaluateConfig(segmenter=TINY, protocols=["real", "mix"], qc_min_dice=1.0)
    with pytest.raises(ConfigError) as info:
        evaluate_pipeline(config, train.spec, train, test, synthetic, tmp_path, torch.device("cpu"), seed=3, show_progress=False)
    message = str(info.value)
    assert message.startswith("evaluate.qc_min_dice 1 removed all 4 generated pairs (their QC Dice is ")
    assert "so mix would have nothing to train on; lower it below" in message and "rerun with --resume" in message
    assert (tmp_path / "real" / "result.json").is_file()  # what the rerun reuses
