"""Speck removal against its bar: a finished run's label stages measured on held-out cases, per share.

For each share (of the smallest real piece of a structure below which a generated piece counts
as a speck, ``msaug.train.specks``), the run's stages are loaded, given the areas learnt from
the run's own real training maps scaled by the share, and measured by the per-stage probe on
the run's held-out test cases (the same measurement as the report's per-stage table). Prints,
per label stage, components per map and the stage's figure (NN-IoU coverage or IoU).

    python benchmarks/speck_share.py runs/bench/compare-cxr-f0.1/multi/seed-0 --shares 0,1,0.5,0.25,0.1

Share 0 is no removal. Reads the run folder only (the split is recomputed, not written).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from msaug.pipeline.runfolder import RunFolder
from msaug.pipeline.runner import load_stage, make_pairs, prepare, stage_samples
from msaug.data import split_dataset
from msaug.sample import SubsetDataset
from msaug.segment.stage_probe import load_reference, probe_stages
from msaug.train.specks import SPECK_SHARE, smallest_components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (msaug pipeline run --out)")
    parser.add_argument("--shares", default="0,1,0.5,0.25,0.1", help="comma list of shares (0: no removal)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    folder = RunFolder(args.run)
    prepared = prepare(folder.resolved, profile="none", training=False)
    split = prepared.split or split_dataset(prepared.dataset, prepared.config.data)
    train, test = SubsetDataset(prepared.dataset, split.train), SubsetDataset(prepared.dataset, split.test)
    samples = stage_samples(prepared, train)
    learnt = {}
    for cs in prepared.chain.stages:
        load_stage(cs, folder.stage(cs.folder))
        if getattr(cs.stage.params, "clean_specks", False):
            learnt[cs.name] = smallest_components(make_pairs(cs, samples, prepared.spec).targets, prepared.spec.encoding)
            print(f"{cs.name}: smallest real piece per class (px): {learnt[cs.name].tolist()}")
    reference, note = load_reference(folder.evaluation / "real" / "checkpoint", "cpu")
    gen = prepared.config.generate
    results = {}
    for share in (float(s) for s in args.shares.split(",")):
        for cs in prepared.chain.stages:
            if cs.name in learnt:
                # the stage removes pieces below SPECK_SHARE of its learnt areas: scale them so the bar is `share`
                cs.stage.smallest_real_component = learnt[cs.name].double() * (share / SPECK_SHARE) if share else None
        result = probe_stages(prepared.chain, prepared.spec, train, test, "cpu", gen.seed, gen.count, gen.batch_size, reference, note)
        results[share] = result
        for row in result["rows"]:
            if row["name"] in learnt:
                figures = row["figures"]["stage"]
                print(f"share {share:g}  {row['name']}: components per map {figures.get('components_mean'):.2f}, "
                      f"{row['figure']} {row['value']:.3f} (reference {row['reference_value']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
