"""The evaluate phase of a run: segmenters trained under each protocol, pair QC, the per-stage measurement.

:func:`evaluate_run` is called by the runner after generation and before the report, which
only renders what it returns (report.json's ``evaluation``). It is the one place of a run that
trains segmenters and writes the per-pair QC Dice into the synthetic manifest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msaug.builtin.datasets import resize_sample
from msaug.progress import Reporter
from msaug.sample import ListDataset, native_crops
from msaug.segment.evaluate import evaluate_pipeline
from msaug.segment.qc import annotate_manifest
from msaug.segment.stage_probe import MAX_CASES, TRAINING_MAPS, load_reference, probe_stages
from msaug.synthetic import SyntheticDataset

if TYPE_CHECKING:
    from msaug.pipeline.runner import Prepared, RunState


def evaluate_run(prepared: Prepared, state: RunState, reporter: Reporter, show_progress: bool) -> dict[str, Any]:
    """Run the pipeline's ``evaluate:`` block on the run's synthetic pairs; the result is JSON-able.

    Writes ``OUT/evaluation/`` (each protocol's segmenter and result) and the per-pair QC Dice
    into ``OUT/synthetic/manifest.jsonl``, where ``--qc-min-dice`` and the exporters read it.
    """
    spec = prepared.spec
    run = state.folder
    synthetic = SyntheticDataset(run.synthetic)
    pair_spec = dataclasses.replace(spec, patches=synthetic.spec.patches)  # native-resolution patches stay marked as such
    synthetic_at_size = ListDataset(pair_spec, [resize_sample(synthetic[i], pair_spec) for i in range(len(synthetic))])
    reporter.message("[bold]Evaluating[/] segmentation protocols: " + ", ".join(prepared.config.evaluate.protocols))
    result = evaluate_pipeline(
        prepared.config.evaluate, spec, state.train, state.test, synthetic_at_size, run.evaluation, state.device, prepared.config.seed, show_progress,
        reporter=reporter,
    )
    scores = result.get("qc", {}).pop("scores", None)
    if scores:  # per-pair QC Dice goes into the manifest, where --qc-min-dice and exporters read it
        by_id = {s.id: int(s.meta["index"]) for s in synthetic_at_size.samples}
        annotate_manifest(run.synthetic, {by_id[i]: d for i, d in scores.items() if i in by_id})
    result["stages"] = measure_stages(prepared, state, run.evaluation)  # reports its own errors; never raises
    link = result["stages"].get("weak_link")
    if link:
        reporter.message(f"[bold]Stages[/] on held-out real cases: weak link is stage {link['stage']} {link['use']} (share of reference {link['share']:.2f})")
    return result


def measure_stages(prepared: Prepared, state: RunState, evaluation_dir: Path) -> dict[str, Any]:
    """:func:`~msaug.segment.stage_probe.probe_stages` for a finished run; never raises (an error becomes the result's ``error``)."""
    try:
        reference, note = load_reference(Path(evaluation_dir) / "real" / "checkpoint", state.device)
        gen, data = prepared.config.generate, prepared.config.data
        assert state.train is not None and state.test is not None
        spec, train, test = prepared.spec, state.train, state.test
        if data.crops:  # the stages learned native-resolution patches: they are measured on patches of the same cases
            train = native_crops(state.train, data.size, min(data.crops, TRAINING_MAPS), prepared.config.seed)
            test = native_crops(state.test, data.size, MAX_CASES, prepared.config.seed + 1)
            spec = train.spec
        return probe_stages(prepared.chain, spec, train, test, state.device, gen.seed, gen.count, gen.batch_size, reference, note)
    except Exception as exc:  # noqa: BLE001 - the measurement must not cost the run its report
        return {"rows": [], "weak_link": None, "error": f"{type(exc).__name__}: {exc}"}
