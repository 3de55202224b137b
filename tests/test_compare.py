"""``msaug compare`` on two classic arms with tiny budgets: outputs, fairness, resume, verdict."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from msaug.bench.compare import budget_overrides, parse_budget, resolve_arm, verdict
from msaug.cli import cli
from msaug.errors import ConfigError
from msaug.pipeline.runner import prepare
from msaug.stage import Budget
from tests.conftest import CLASSIC

EVALUATE = {"segmenter": {"arch": "unet", "encoder": "tu-resnet18", "steps": 4, "batch_size": 4}, "protocols": ["real", "mix"]}


def arms(tmp_path):
    a = {**CLASSIC, "name": "two-step", "evaluate": EVALUATE, "profiles": {}, "generate": {"count": 8, "batch_size": 4}}
    b = {**a, "name": "one-step", "stages": [{"use": "core.real_labels"}, {"use": "core.lab2im"}]}
    paths = []
    for cfg in (a, b):
        path = tmp_path / f"{cfg['name']}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        paths.append(path)
    return paths


def test_parse_budget():
    assert parse_budget("600s") == ("seconds", 600.0)
    assert parse_budget("2000") == ("steps", 2000.0)
    assert parse_budget("1500steps") == ("steps", 1500.0)
    with pytest.raises(ConfigError, match="expected seconds like 600s"):
        parse_budget("ten")
    with pytest.raises(ConfigError, match="must be positive"):
        parse_budget("0s")


def test_budget_split_follows_declared_steps(tmp_path, shapes_dir):
    cfg = {**CLASSIC, "profiles": {}, "stages": [
        {"use": "gan.label_generator", "params": {"size": 16}, "budget": {"steps": 300}},
        {"use": "gan.label_upscaler", "params": {"in_size": 16}, "budget": {"steps": 100}},
        {"use": "core.lab2im"},
    ]}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(cfg))
    overrides, info = budget_overrides(prepare(path), ("steps", 1000))
    assert overrides == {"stages.label_generator.budget.steps": 750, "stages.label_upscaler.budget.steps": 250}
    overrides, info = budget_overrides(prepare(path), ("seconds", 60))
    assert overrides["stages.label_generator.budget.seconds"] == 45.0 and info["stages"] == {"label_generator": 45.0, "label_upscaler": 15.0}
    # under a seconds budget the clock alone stops a stage: no step limit (steps: null), not a huge stand-in
    assert overrides["stages.label_generator.budget.steps"] is None and overrides["stages.label_upscaler.budget.steps"] is None
    resolved = prepare(path, overrides=overrides)
    assert [cs.budget for cs in resolved.chain.stages[:2]] == [Budget(None, 45.0), Budget(None, 15.0)]


def test_resolve_arm_errors(tmp_path):
    assert resolve_arm("multi", "xray").name == "xray.yaml"
    with pytest.raises(ConfigError, match="neither a pipeline YAML nor one of single, multi, classic"):
        resolve_arm("nope", "xray")


def test_verdict_spread_rule():
    def arm(d, sd, t):
        return {"quality": {"synth": {"dice": {"mean": d, "std": sd, "n": 3}}}, "cost": {"flops_per_pair": t, "train_seconds": {"mean": t, "std": 0.0}}}

    v = verdict({"a": arm(0.8, 0.01, 10.0), "b": arm(0.7, 0.02, 5.0)})
    assert v["quality"]["winner"] == "a" and v["quality"]["beyond_spread"]
    assert v["cost"]["cheapest_generation"] == "b" and v["cost"]["fastest_training"] == "b"
    assert "b trains fastest" in v["line"]
    v = verdict({"a": arm(0.8, 0.1, 10.0), "b": arm(0.75, 0.1, 5.0)})
    assert not v["quality"]["beyond_spread"] and "within the seed spread" in v["line"]
    # the same budget: a two-second gap inside a four-second spread is no win
    equal = {"a": arm(0.8, 0.01, 471.0), "b": arm(0.7, 0.02, 469.0)}
    equal["a"]["cost"]["train_seconds"]["std"] = 4.0
    v = verdict(equal)
    assert not v["cost"]["training_beyond_spread"] and "training time equal (within the seed spread or 2%)" in v["line"]
    # seconds-capped arms: a 0.65 s overshoot beyond a 0.2 s spread is still the same budget
    capped = {"a": arm(0.6, 0.02, 420.46), "b": arm(0.07, 0.05, 421.10)}
    capped["b"]["cost"]["train_seconds"]["std"] = 0.2
    v = verdict(capped)
    assert v["cost"]["fastest_training"] == "a" and v["cost"]["training_gap_seconds"] > 0.6
    assert not v["cost"]["training_beyond_spread"] and "training time equal" in v["line"]


def test_verdict_calls_no_winner_from_one_seed_and_says_whether_pairs_help():
    def arm(real, mix, sd, n):
        q = {"real": {"dice": {"mean": real, "std": sd, "n": n}}, "mix": {"dice": {"mean": mix, "std": sd, "n": n}}}
        return {"quality": q, "cost": {"flops_per_pair": 1.0, "train_seconds": {"mean": 10.0, "std": 0.0}}}

    v = verdict({"multi": arm(0.77, 0.80, 0.0, 1), "single": arm(0.77, 0.70, 0.0, 1)}, "mix")
    assert not v["quality"]["beyond_spread"] and v["quality"]["seeds"] == 1
    assert "multi is ahead by 0.100, but 1 seed gives no spread: no winner is called (use --seeds 2 or more)" in v["line"]
    assert "multi: best synthetic protocol mix +0.030 Dice vs real (one seed: no spread)" in v["line"]
    v = verdict({"multi": arm(0.77, 0.80, 0.005, 3), "single": arm(0.77, 0.70, 0.005, 3)}, "mix")
    assert v["quality"]["beyond_spread"] and "multi wins by 0.100 (beyond the seed spread)" in v["line"]
    assert v["versus_real"]["multi"]["call"] == "helps, beyond the seed spread"
    assert v["versus_real"]["single"]["call"] == "hurts, beyond the seed spread"
    v = verdict({"multi": arm(0.77, 0.775, 0.01, 3), "single": arm(0.77, 0.76, 0.01, 3)}, "mix")
    assert v["versus_real"]["multi"]["call"] == "within the seed spread of 0.020"


@pytest.mark.slow
def test_compare_two_arms_end_to_end(tmp_path, shapes_dir):
    a, b = arms(tmp_path)
    out = tmp_path / "cmp"
    args = ["compare", str(a), str(b), "--seeds", "2", "--out", str(out), "--protocols", "real,mix", "--quiet", "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == {"two-step", "one-step"}
    for arm in ("two-step", "one-step"):
        s = report["summary"][arm]
        assert s["quality"]["mix"]["dice"]["n"] == 2 and 0 <= s["quality"]["mix"]["dice"]["mean"] <= 1
        assert s["cost"]["peak_rss_mb"]["mean"] > 50  # a real child process with torch loaded
        assert s["cost"]["flops_per_pair"] > 0
        assert s["cost"]["parameters"] == 9  # lab2im: 2 x (1 + 3 classes) intensity coefficients + 1 texture level
        assert 0 <= s["realism"]["label_precision"]["mean"] <= 1 and s["realism"]["label_coverage"]["n"] == 2
        assert not any(key.endswith("_std") for key in s["realism"])
        paired = s["paired"]["mix"]  # mix against real image by image: each seed's test images, then all pooled
        assert paired["per_seed"]["n"] == 2 and 0 <= paired["seeds_significant"] <= 2
        tests = [json.loads((out / arm / f"seed-{seed}.json").read_text())["evaluation"]["pairs"]["test"] for seed in (0, 1)]
        assert paired["pooled"]["images"] == sum(tests) > 0
        assert paired["pooled"]["better"] + paired["pooled"]["worse"] + paired["pooled"]["tied"] == paired["pooled"]["images"]
        for seed in (0, 1):
            assert (out / arm / f"seed-{seed}" / "synthetic/manifest.jsonl").is_file()
    # the real baseline is the same data and segmenter for both arms of a seed
    runs = [json.loads((out / arm / "seed-0.json").read_text()) for arm in ("two-step", "one-step")]
    assert runs[0]["evaluation"]["pairs"] == runs[1]["evaluation"]["pairs"]
    real = [r["evaluation"]["protocols"]["real"] for r in runs]  # trained once per seed, reused by the second arm
    assert "reused_from" not in real[0] and real[1]["reused_from"] == str((out / "two-step/seed-0/evaluation/real").resolve())
    assert real[0]["metrics"] == real[1]["metrics"]
    for name in ("report.md", "dice.png", "cost.png", "samples.png"):
        assert (out / name).is_file(), name
    assert "**Verdict:**" in (out / "report.md").read_text()
    assert "| Δ Dice mix − real, paired per image" in (out / "report.md").read_text()
    assert "verdict" in result.stderr
    # resume: nothing is rerun
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and again.stderr.count("done earlier") == 4


def _result(dice: dict[str, tuple[float, float]], seconds: dict[str, float]) -> dict:
    """A comparison's report as compare() returns it, reduced to what the curve reads."""
    summary = {arm: {"quality": {"synth": {"dice": {"mean": m, "std": s, "n": 2}}},
                     "cost": {"train_seconds": {"mean": seconds[arm], "std": 1.0, "n": 2}},
                     "realism": {"qc_mean_dice": {"mean": 0.5, "std": 0.0, "n": 2}}} for arm, (m, s) in dice.items()}
    return {"summary": summary, "protocols": ["real", "synth"], "verdict": {"headline_protocol": "synth"}, "seeds": 2,
            "domain": "xray", "profile": "quick", "train_fraction": 1.0}


def test_budget_curve_says_which_budget_reaches_the_other_arms_best():
    from msaug.bench.compare import budget_curve, render_curve

    points = [
        {"budget": "60s", "folder": "f60", "result": _result({"multi": (0.80, 0.01), "single": (0.60, 0.01)}, {"multi": 61, "single": 60})},
        {"budget": "120s", "folder": "f120", "result": _result({"multi": (0.82, 0.01), "single": (0.70, 0.01)}, {"multi": 121, "single": 122})},
        {"budget": "240s", "folder": "f240", "result": _result({"multi": (0.83, 0.01), "single": (0.79, 0.01)}, {"multi": 240, "single": 241})},
    ]
    curve = budget_curve(points)
    assert curve["protocol"] == "synth" and curve["budgets"] == ["60s", "120s", "240s"]
    assert [p["dice"]["mean"] for p in curve["series"]["single"]] == [0.60, 0.70, 0.79]
    assert [p["train_seconds"]["mean"] for p in curve["series"]["multi"]] == [61, 121, 240]
    # multi's first point (0.80 ± 0.01) is within the spread of single's best (0.79 ± 0.01): 241 s / 61 s
    assert curve["reading"][0] == ("multi reaches single's best synth Dice (0.790 at 240s, 241 s of training) at 60s "
                                   "(61 s; 3.95x the other's training time) within the seed spread")
    assert curve["reading"][1] == "single does not reach multi's best synth Dice (0.830 at 240s, 240 s of training) within the budgets measured"
    text = render_curve(curve)
    assert "| 120s | 0.820 ± 0.010 | 121 ± 1 | 0.700 ± 0.010 | 122 ± 1 |" in text
    assert "![cost to quality](curve.png)" in text


def test_compare_budgets_runs_one_comparison_per_budget_and_writes_the_curve(tmp_path, monkeypatch):
    import sys

    from msaug.bench.compare import CompareOptions, compare_budgets

    cmp = sys.modules["msaug.bench.compare"]  # the package re-exports a function named compare
    a, b = arms(tmp_path)
    seen = []

    def fake_compare(options, reporter=None):
        seen.append((options.budget, options.out))
        value = {"2": 0.5, "4": 0.7}[options.budget]
        return _result({a.stem: (value, 0.0), b.stem: (value - 0.1, 0.0)}, {a.stem: float(options.budget), b.stem: float(options.budget)})

    monkeypatch.setattr(cmp, "compare", fake_compare)
    options = CompareOptions([str(a), str(b)], out=tmp_path / "curve", show_progress=False)
    curve = compare_budgets(options, ["4", "2"])
    assert seen == [("2", tmp_path / "curve" / "budget-2steps"), ("4", tmp_path / "curve" / "budget-4steps")]
    assert json.loads((tmp_path / "curve" / "curve.json").read_text())["budgets"] == ["2", "4"]
    assert (tmp_path / "curve" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 4 | 0.700 ± 0.000 | 4 ± 1 | 0.600 ± 0.000 | 4 ± 1 |" in (tmp_path / "curve" / "curve.md").read_text()
    assert curve["reading"] == [
        "two-step reaches one-step's best synth Dice (0.600 at 4, 4 s of training) at 4 (4 s; 1.00x the other's training time)",
        "one-step does not reach two-step's best synth Dice (0.700 at 4, 4 s of training) within the budgets measured",
    ]


def test_training_flops_sum_the_stages_and_a_trained_stage_without_them_is_unknown():
    from msaug.bench.compare import training_flops
    from msaug.pipeline.records import GenerationRecord, RunReport, StageBudget, StageRecord

    def stage(name: str, summary: dict, budget: StageBudget | None) -> StageRecord:
        return StageRecord(name=name, use="x", input=None, outputs=None, seconds=1.0, budget=budget, summary=summary, losses={})

    def report(*stages: StageRecord) -> RunReport:
        return RunReport.model_validate({
            "pipeline": "p.yaml", "profile": None, "sets": [], "device": "cpu",
            "data": {"dataset": "d", "size": 16, "train": 1, "test": 1, "classes": ["a"], "encoding": "multilabel"},
            "stages": [s.model_dump() for s in stages], "generate": GenerationRecord(count=0, seconds=None, pairs_per_second=None, seed=0).model_dump(),
            "label_metrics": {}, "seconds_total": 1.0})

    labels = stage("labels", {"steps": 4, "train_flops": 2e12}, StageBudget(steps=4))
    image = stage("image", {"steps": 4, "train_flops": 1e12}, StageBudget(steps=4))
    kept = stage("real_labels", {}, None)  # trains nothing: adds nothing
    assert training_flops(report(labels, kept, image)) == 3e12
    uncounted = stage("plugin", {"steps": 10}, StageBudget(seconds=5))  # trained, did not count
    assert training_flops(report(labels, uncounted)) is None


def test_budget_curve_reads_training_flops_when_every_point_has_them():
    from msaug.bench.compare import budget_curve, render_curve

    def with_flops(result: dict, flops: dict[str, float]) -> dict:
        for arm, value in flops.items():
            result["summary"][arm]["cost"]["train_flops"] = {"mean": value, "std": 0.0, "n": 2}
        return result

    points = [
        {"budget": "60s", "folder": "f60", "result": with_flops(_result({"multi": (0.80, 0.01), "single": (0.60, 0.01)}, {"multi": 61, "single": 60}),
                                                            {"multi": 2e12, "single": 1e12})},
        {"budget": "240s", "folder": "f240", "result": with_flops(_result({"multi": (0.83, 0.01), "single": (0.79, 0.01)}, {"multi": 240, "single": 241}),
                                                              {"multi": 8e12, "single": 5e12})},
    ]
    curve = budget_curve(points)
    assert curve["flops_counted"] is True
    assert [p["train_flops"]["mean"] for p in curve["series"]["single"]] == [1e12, 5e12]
    # multi at 60 s (2 TFLOPs) reaches single's best (at 5 TFLOPs): 2.5x fewer
    assert curve["reading"][0] == ("multi reaches single's best synth Dice (0.790 at 240s, 241 s of training) at 60s "
                                   "(61 s; 3.95x the other's training time, 2 TFLOPs: 2.50x the other's training FLOPs) within the seed spread")
    text = render_curve(curve)
    assert "| 60s | 0.800 ± 0.010 | 61 ± 1 | 0.600 ± 0.010 | 60 ± 1 | 2 ± 0 | 1 ± 0 |" in text
    assert "![cost to quality, FLOPs](curve-flops.png)" in text
    from msaug.bench.plots import curve_chart

    assert curve_chart(curve, x_key="train_flops")[:8] == b"\x89PNG\r\n\x1a\n"
    assert curve_chart(curve, x_key="train_flops") != curve_chart(curve)


@pytest.mark.parametrize(("budgets", "message"), [
    (["600s"], "give at least two budgets"),
    (["60s", "2000"], "all in seconds (120s) or all in steps (2000), not both"),
    (["60s", "60s"], "each budget once"),
    (["60s", "soon"], "--budget 'soon': expected seconds like 600s or steps like 2000"),
])
def test_compare_budgets_refuses_bad_budget_lists(tmp_path, budgets, message):
    from msaug.bench.compare import CompareOptions, compare_budgets

    a, b = arms(tmp_path)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compare_budgets(CompareOptions([str(a), str(b)], out=tmp_path / "x", show_progress=False), budgets)
    assert not (tmp_path / "x").exists()


def test_compare_cli_refuses_budget_with_budgets(tmp_path):
    a, b = arms(tmp_path)
    result = CliRunner().invoke(cli, ["compare", str(a), str(b), "--budget", "60s", "--budgets", "60s,120s", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--budget and --budgets exclude each other" in " ".join(result.stderr.split())
