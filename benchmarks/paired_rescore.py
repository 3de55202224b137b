"""Per-image scores for runs evaluated before they were kept: each protocol's saved segmenter rescored.

Runs written before ``metrics.per_image_dice`` existed hold only means. This loads each
protocol's checkpoint of a finished run (``RUN/evaluation/<protocol>/checkpoint``), scores it on
the run's held-out test split exactly as the evaluation did (``test_scorer``: the run's
``metrics_at`` and segmenter size), checks that the recomputed mean Dice equals the one the run
reported (so the scores are the run's own, not new ones), and prints each protocol against
``real`` image by image (``msaug.segment.paired``).

    python benchmarks/paired_rescore.py runs/bench/cxr-f0.1-multi-s1 runs/bench/cxr-f0.1-single-s1 --json paired.json

Reads the run folders only (the split is recomputed and checked against ``split.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from msaug.data import sample_ids, split_dataset
from msaug.io import read_json
from msaug.pipeline.runfolder import RunFolder
from msaug.pipeline.runner import prepare
from msaug.sample import SubsetDataset
from msaug.segment.evaluate import test_scorer
from msaug.segment.paired import format_paired, paired_against
from msaug.segment.segmenter import Segmenter

TOLERANCE = 1e-6


def rescore(run: Path) -> dict:
    folder = RunFolder(run)
    prepared = prepare(folder.resolved, profile="none", training=False)
    split = prepared.split or split_dataset(prepared.dataset, prepared.config.data)
    test = SubsetDataset(prepared.dataset, split.test)
    saved_ids = read_json(folder.split)["test"]
    if sample_ids(test) != saved_ids:
        raise SystemExit(f"{run}: the recomputed test split differs from split.json; not the run's test images")
    evaluation = read_json(folder.evaluation / "evaluation.json")
    score = test_scorer(prepared.config.evaluate.metrics_at, test, evaluation["segmenter"]["size"])
    protocols = {}
    for name, result in evaluation["protocols"].items():
        metrics = score(Segmenter.load(folder.evaluation / name / "checkpoint", "cpu"))
        reported, again = result["metrics"]["mean"]["dice"]["mean"], metrics["mean"]["dice"]["mean"]
        if abs(reported - again) > TOLERANCE:
            raise SystemExit(f"{run}: {name} rescored to mean Dice {again:.6f}, the run reported {reported:.6f}")
        print(f"{run}: {name} mean Dice {again:.4f} (reported {reported:.4f}) over {metrics['images']} images")
        protocols[name] = {"metrics": metrics}
    return protocols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished, evaluated run folders (msaug pipeline run --out)")
    parser.add_argument("--json", type=Path, help="also write each run's per-image Dice and paired figures here")
    args = parser.parse_args()
    out = {}
    for run in args.runs:
        protocols = rescore(run)
        paired = paired_against(protocols, "real", read_json(RunFolder(run).evaluation / "evaluation.json")["seed"])
        print(format_paired(paired))
        out[str(run)] = {"per_image_dice": {k: v["metrics"]["per_image_dice"] for k, v in protocols.items()}, "paired": paired}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
