"""Per-stage measurement on held-out real cases: planted stages, references, errors, the run report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from msaug.modality import Image, Label, Noise
from msaug.pipeline.composer import Chain, ComposedStage
from msaug.pipeline.runner import RunOptions, make_pairs, prepare, run_pipeline
from msaug.rng import BatchRNG
from msaug.sample import SubsetDataset
from msaug.segment import stage_probe
from msaug.segment.data import SegmentationTensors
from msaug.segment.qc import score_pairs
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.segment.stage_probe import format_stage_table, jitter_maps, probe_stages, summarize_stage_tables
from msaug.stage import Budget, FitContext, Stage
from tests.conftest import CLASSIC

# the shapes fixture: background 0.2, disc 0.7, square 0.5 (tests/conftest.py make_shapes_case)
LEVELS = (0.2, 0.7, 0.5)


class IntensitySegmenter(nn.Module):
    """A real (if simple) segmenter for the shapes: each pixel goes to the class with the nearest grey level."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-200.0 * (x[:, :1] - level) ** 2 for level in LEVELS], dim=1)


def write_yaml(tmp_path: Path, **changes: Any) -> Path:
    cfg = {**CLASSIC, "profiles": {}, **changes}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def fitted(path: Path, tmp_path: Path):
    """A prepared pipeline whose stages are fitted on the training split, and its train/test views."""
    prepared = prepare(path)
    train, test = SubsetDataset(prepared.dataset, prepared.split.train), SubsetDataset(prepared.dataset, prepared.split.test)
    samples = [train[i] for i in range(len(train))]
    for cs in prepared.chain.stages:
        ctx = FitContext(out_dir=tmp_path / cs.folder, device=torch.device("cpu"), seed=0, show_progress=False)
        cs.stage.fit(make_pairs(cs, samples, prepared.spec), Budget(1), ctx)
    return prepared, train, test


def segmenter(prepared) -> Segmenter:
    return Segmenter(SegmenterInfo.for_spec(prepared.spec, "intensity", "none"), model=IntensitySegmenter())


def probe(prepared, train, test, reference=None, **kw):
    return probe_stages(prepared.chain, prepared.spec, train, test, "cpu", seed=0, count=10, batch_size=4, reference=reference, **kw)


def test_label_resize_is_its_own_interpolation_reference(tmp_path, shapes_dir):
    stages = [dict(CLASSIC["stages"][0]), {"use": "core.label_resize", "params": {"in_size": 16, "smooth": 0}}, dict(CLASSIC["stages"][2])]
    prepared, train, test = fitted(write_yaml(tmp_path, stages=stages), tmp_path)
    result = probe(prepared, train, test)
    assert result["held_out_cases"] == len(test) == 2
    row = result["rows"][1]
    assert row["kind"] == "label → label" and row["input_size"] == 16 and row["size"] == 32
    # smooth 0 is exactly label-safe interpolation: the same IoU, share 1
    assert row["value"] == row["reference_value"] and row["share"] == 1.0
    assert 0.5 < row["value"] < 1.0  # 16 px maps enlarged to 32 px lose the shapes' corners, not the shapes
    assert row["figures"]["stage"]["components"]["disc"]["mean"] == pytest.approx(1.0)
    assert row["figures"]["held_out"]["components"]["square"]["mean"] == pytest.approx(1.0)


def test_identity_label_stage_scores_one(tmp_path, shapes_dir):
    stages = [{"use": "core.real_labels"}, {"use": "core.label_resize", "params": {"in_size": 32, "smooth": 0}}, {"use": "core.lab2im"}]
    prepared, train, test = fitted(write_yaml(tmp_path, stages=stages), tmp_path)
    row = probe(prepared, train, test)["rows"][1]
    assert row["value"] == row["reference_value"] == 1.0 and row["share"] == 1.0
    assert row["figures"]["stage"]["components_wasserstein"] == 0.0


def test_jitter_maps_are_valid_deformed_training_maps(tmp_path, shapes_dir, toy):
    prepared, train, _ = fitted(write_yaml(tmp_path), tmp_path)
    maps = make_pairs(prepared.chain.stages[0], [train[i] for i in range(len(train))], prepared.spec).targets
    jittered = jitter_maps(maps, 12, seed=3, encoding="index")
    assert jittered.shape == (12, 3, 16, 16)
    assert set(jittered.unique().tolist()) <= {0.0, 1.0} and torch.all(jittered.sum(dim=1) == 1)  # one-hot everywhere
    assert not any(torch.equal(j, m) for j in jittered for m in maps)  # every map is deformed
    assert torch.equal(jittered, jitter_maps(maps, 12, seed=3, encoding="index"))
    assert not torch.equal(jittered, jitter_maps(maps, 12, seed=4, encoding="index"))
    overlapping = torch.as_tensor(np.stack([s.label for s in toy(6, 32, encoding="multilabel").samples]))
    warped = jitter_maps(overlapping, 6, seed=0, encoding="multilabel")
    assert warped.shape == overlapping.shape and set(warped.unique().tolist()) <= {0.0, 1.0}
    assert (warped[:, 0] * warped[:, 1]).sum() > 0  # the bar still overlaps the disc: multilabel stays multilabel


def test_label_generator_row_has_both_references(tmp_path, shapes_dir):
    prepared, train, test = fitted(write_yaml(tmp_path), tmp_path)
    row = probe(prepared, train, test)["rows"][0]
    assert row["kind"] == "label generator" and row["size"] == 16
    figures = row["figures"]
    assert figures["stage"]["maps"] == 10 and figures["jitter"]["maps"] == 10 and figures["real_other_cases"]["maps"] == len(train)
    assert figures["held_out"]["maps"] == len(test)
    for key in ("stage", "real_other_cases", "jitter"):
        assert 0 < figures[key]["precision"] <= 1 and 0 < figures[key]["coverage"] <= 1
        assert figures[key]["components"]["disc"]["mean"] >= 1
    assert row["value"] == figures["stage"]["coverage"] and row["reference_value"] == figures["real_other_cases"]["coverage"]
    assert row["share"] == pytest.approx(row["value"] / row["reference_value"], abs=1e-4)
    # core.real_labels *is* a jitter of the training maps; its maps are the first pairs the run would generate
    stage = prepared.chain.stages[0]
    first = stage.stage.generate(None, BatchRNG.for_indices(0, range(4), stream=0))
    assert torch.equal(first, stage_probe.run_stage(stage, None, 4, 0, torch.device("cpu"), 4)[0])


def test_translator_dice_on_real_images_is_score_pairs_on_them(tmp_path, shapes_dir):
    prepared, train, test = fitted(write_yaml(tmp_path), tmp_path)
    reference = segmenter(prepared)
    row = probe(prepared, train, test, reference)["rows"][2]
    assert row["kind"] == "label → image"
    samples = [test[i] for i in range(len(test))]
    images = torch.stack([torch.as_tensor(s.image) for s in samples])
    labels = torch.stack([torch.as_tensor(s.label) for s in samples])
    direct = score_pairs(reference, SegmentationTensors(images, labels, torch.ones(len(samples), 1, 32, 32, dtype=torch.bool), ["a", "b"]))
    assert row["reference_value"] == pytest.approx(float(np.mean(direct)), abs=1e-5)
    assert row["reference_value"] > 0.9  # the intensity segmenter reads the real shapes
    assert 0 < row["value"] <= 1 and row["share"] == pytest.approx(row["value"] / row["reference_value"], abs=1e-3)
    no_reference = probe(prepared, train, test, reference_note="no segmenter here")["rows"][2]
    assert no_reference["not_measured"] == "no segmenter here" and "share" not in no_reference


class RealPairs(Stage):
    """Noise → (image, label): replays the fitted real pairs (a perfect joint generator of the training cases)."""

    name = "test.real_pairs"
    trainable = False

    @property
    def input(self) -> Noise:
        return Noise(1)

    @property
    def output(self) -> tuple[Image, Label]:
        return (self.data.image, self.data.label)

    def fit(self, pairs, budget, ctx):
        self.images, self.labels = pairs.targets
        return {}

    def generate(self, x, rng):
        picks = [int(rng.numpy(b).integers(len(self.labels))) for b in range(len(rng))]
        return self.images[picks], self.labels[picks]

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


class Blur(Stage):
    name = "test.blur"

    @property
    def input(self) -> Image:
        return self.data.image

    @property
    def output(self) -> Image:
        return self.data.image

    def generate(self, x, rng):
        return x

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


def test_joint_stage_and_unmeasured_kinds(tmp_path, shapes_dir):
    prepared, train, test = fitted(write_yaml(tmp_path), tmp_path)
    spec = prepared.spec
    joint, other = ComposedStage(0, "real_pairs", RealPairs.name, RealPairs(None, spec)), ComposedStage(1, "blur", Blur.name, Blur(None, spec))
    joint.stage.fit(make_pairs(joint, [train[i] for i in range(len(train))], spec), Budget(1), None)
    chain = Chain([joint, other], (1, 0), (0, 1), [None, (0, 0)])
    result = probe_stages(chain, spec, train, test, "cpu", 0, 8, 4, segmenter(prepared))
    row, blur = result["rows"]
    assert row["kind"] == "joint image + label generator"
    image = row["figures"]["image"]
    assert image["own_label_dice"] > 0.9 and image["real_image_dice"] > 0.9  # real pairs agree with themselves
    assert row["share"] == min(image["share"], row["figures"]["stage"]["coverage"] / row["figures"]["real_other_cases"]["coverage"])
    assert blur["kind"] == "other" and "no probe measures a Image(1 ch, 32 px) → Image(1 ch, 32 px) stage" in blur["not_measured"]
    assert result["weak_link"]["stage"] == 1


def test_a_probe_that_raises_is_an_error_row(tmp_path, shapes_dir, monkeypatch):
    prepared, train, test = fitted(write_yaml(tmp_path), tmp_path)

    def broken(self, cs):
        raise RuntimeError("upscaler probe broke")

    monkeypatch.setattr(stage_probe.Probe, "label_to_label", broken)
    result = probe(prepared, train, test, segmenter(prepared))
    assert result["rows"][1]["error"] == "RuntimeError: upscaler probe broke" and "share" not in result["rows"][1]
    assert result["rows"][0]["share"] is not None and result["rows"][2]["share"] is not None
    assert result["weak_link"]["stage"] in (1, 3)
    text = format_stage_table(result)
    assert "| 2 core.label_resize | label → label | error: RuntimeError: upscaler probe broke |" in text


@pytest.mark.slow
def test_run_report_names_the_weak_link_and_survives_a_failing_probe(tmp_path, shapes_dir, monkeypatch):
    evaluate = {"segmenter": {"arch": "unet", "encoder": "tu-resnet10t", "steps": 2, "batch_size": 4}, "protocols": ["real"]}
    path = write_yaml(tmp_path, evaluate=evaluate, generate={"count": 8, "batch_size": 4})
    out = tmp_path / "run"
    report = run_pipeline(path, RunOptions(out=out, show_progress=False, device="cpu"))
    stages = report["evaluation"]["stages"]
    assert [r["kind"] for r in stages["rows"]] == ["label generator", "label → label", "label → image"]
    assert all(r["share"] is not None for r in stages["rows"]), stages
    translator = stages["rows"][2]
    reference = Segmenter.load(out / "evaluation/real/checkpoint")
    assert translator["segmenter"] == repr(reference)
    assert json.loads((out / "report.json").read_text())["evaluation"]["stages"] == stages
    link = stages["weak_link"]
    assert link["share"] == min(r["share"] for r in stages["rows"])
    text = (out / "report.md").read_text()
    assert "## Stages measured on held-out real cases" in text
    assert f"**Weak link**: stage {link['stage']} {link['use']} (share of reference {link['share']:.2f}" in text
    assert "| jitter of the training maps (affine + elastic) |" in text and "| interpolation of the input |" in text

    # msaug compare shows the same table per arm, over seeds
    from msaug.bench.compare import render_markdown

    summary = summarize_stage_tables([stages, stages])
    assert summary["seeds"] == 2 and summary["rows"][1]["share"]["std"] == 0.0
    assert summary["weak_link_counts"] == {str(link["stage"]): 2}
    result = {"summary": {"classic": {"quality": {}, "cost": {k: {"mean": 1.0, "std": 0.0} for k in
                                                             ("train_seconds", "wall_seconds", "pairs_per_second", "peak_rss_mb")}
                                      | {"flops_per_pair": 1.0, "parameters": 9}, "realism": {}, "stages": summary}},
              "protocols": [], "budget": {}, "domain": "generic", "profile": None, "seeds": 2, "train_fraction": 1.0,
              "arms": {"classic": str(path)}, "verdict": {"line": "-"}}
    md = render_markdown(result)
    assert "### Stages of classic on held-out real cases (mean ± std over 2 seeds)" in md
    assert f"| {link['stage']} {link['use']} |" in md and "| 2 of 2 seeds |" in md

    # a probe that raises costs the run nothing but its own row
    def broken(self, cs):
        raise RuntimeError("translator probe broke")

    monkeypatch.setattr(stage_probe.Probe, "translator", broken)
    again = run_pipeline(path, RunOptions(out=tmp_path / "again", show_progress=False, device="cpu"))
    rows = again["evaluation"]["stages"]["rows"]
    assert rows[2]["error"] == "RuntimeError: translator probe broke" and rows[0]["share"] is not None
    assert "error: RuntimeError: translator probe broke" in (tmp_path / "again/report.md").read_text()
