"""A run's phases: evaluate trains the segmenters and writes QC; the report only renders what it returned."""

from __future__ import annotations

from pathlib import Path

import yaml

import msaug.pipeline.evaluate as evaluate_phase
import msaug.pipeline.report as report_phase
from msaug.io import sha256_file
from msaug.pipeline.runner import RunOptions, run_pipeline


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_report_renders_the_evaluation_and_trains_nothing(classic_yaml, tmp_path, monkeypatch):
    cfg = yaml.safe_load(classic_yaml.read_text())
    cfg["evaluate"] = {}
    classic_yaml.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    calls: list[str] = []
    evaluated: dict = {}
    written: dict[str, set[str]] = {}

    def evaluate_run(prepared, state, console, show_progress):
        calls.append("evaluate")
        evaluated.update(real_evaluate(prepared, state, console, show_progress))
        return evaluated

    def write_report(prepared, state, console, started, evaluation=None):
        calls.append("report")
        before = snapshot(out)
        report = real_report(prepared, state, console, started, evaluation)
        after = snapshot(out)
        written["changed"] = {k for k, v in after.items() if before.get(k) != v}
        return report

    real_evaluate, real_report = evaluate_phase.evaluate_run, report_phase.write_report
    monkeypatch.setattr(evaluate_phase, "evaluate_run", evaluate_run)
    monkeypatch.setattr(report_phase, "write_report", write_report)
    sets = ["evaluate.segmenter.steps=2", "evaluate.segmenter.batch_size=4", "evaluate.protocols=[real,synth]"]
    report = run_pipeline(classic_yaml, RunOptions(out=out, profile="quick", sets=sets, show_progress=False))

    assert calls == ["evaluate", "report"]
    assert report["evaluation"] is evaluated and set(evaluated["protocols"]) == {"real", "synth"}
    # the report writes its own files only: no segmenter, no evaluation result, no manifest edit
    own = {"report.json", "report.md", "grid.png"} | {f"stages/{d.name}/losses.png" for d in (out / "stages").iterdir()}
    assert written["changed"] and written["changed"] <= own, written["changed"] - own


def test_no_evaluate_phase_without_an_evaluate_block_or_with_evaluate_off(classic_yaml, tmp_path, monkeypatch):
    def evaluate_run(*args, **kwargs):
        raise AssertionError("evaluate_run called")

    monkeypatch.setattr(evaluate_phase, "evaluate_run", evaluate_run)
    report = run_pipeline(classic_yaml, RunOptions(out=tmp_path / "plain", profile="quick", show_progress=False))
    assert "evaluation" not in report and not (tmp_path / "plain" / "evaluation").exists()
    cfg = yaml.safe_load(classic_yaml.read_text())
    cfg["evaluate"] = {}
    classic_yaml.write_text(yaml.safe_dump(cfg))
    report = run_pipeline(classic_yaml, RunOptions(out=tmp_path / "off", profile="quick", show_progress=False, evaluate=False))
    assert "evaluation" not in report and not (tmp_path / "off" / "evaluation").exists()
