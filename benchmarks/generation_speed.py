"""CPU generation rate of a finished run, side by side with another checkout of msaug.

    python benchmarks/generation_speed.py RUN_DIR --against /path/to/other/checkout --repeats 5

Each repeat runs ``msaug generate``'s code path (:func:`msaug.pipeline.runner.generate_run`,
``--count`` pairs into a fresh folder, on the CPU) once per code tree, in its own process and
alternating between the trees, so both see the same machine load. The figure is the rate
``msaug generate`` prints (pairs written per second of generation, files and manifest
included; loading the run is not counted). It prints the medians, their ratio, and whether
the two trees wrote the same label maps (decoded) and how far apart their images are.

The run folder's stages must have finished training (``msaug pipeline run ... --no-evaluate``
is enough); its weights are only read. ``--against-run`` gives the other tree a run folder of its
own (say, a copy of the same stages whose ``pipeline.resolved.yaml`` has the generation settings
the other tree shipped with); by default both trees generate from ``RUN_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_path(tree: Path) -> str:
    """PYTHONPATH that makes ``tree``'s msaug and bundled plugins win over the installed ones."""
    parts = [tree / "src", *sorted((tree / "plugins").glob("*/src")), *sorted((tree / "examples").glob("*/src"))]
    return os.pathsep.join(str(p) for p in parts if p.is_dir())


def worker(run_dir: Path, count: int, out: Path) -> None:
    import msaug
    from msaug.pipeline.runner import generate_run

    try:  # msaug generate's entry point sets up the host allocator first; older trees did not
        from msaug.train.device import tune_host_allocator

        tune_host_allocator()
    except ImportError:
        pass

    try:  # a tree with msaug.progress reports through a Reporter; an older one printed on a rich Console
        from msaug.progress import SilentReporter

        quiet: object = SilentReporter()
    except ImportError:
        from rich.console import Console

        quiet = Console(quiet=True)
    result = generate_run(run_dir, count, None, "cpu", quiet, show_progress=False, out=out)
    print(json.dumps({"msaug": msaug.__file__, "pairs_per_second": result.pairs_per_second, "seconds": result.seconds,
                      "written": result.written}))


def run_once(tree: Path, run_dir: Path, count: int, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": tree_path(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(run_dir), "--count", str(count), "--gen-out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"generation with {tree} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found["msaug"].startswith(str(tree)):
        raise SystemExit(f"the worker imported msaug from {found['msaug']}, not from {tree}")
    return found


def compare_outputs(a: Path, b: Path) -> dict:
    import numpy as np

    from msaug.io import read_image

    from msaug.io import read_label_array

    # decoded values, not bytes: two trees may compress the same pixels differently
    labels_same = all(np.array_equal(read_label_array(a / "labels" / p.name), read_label_array(p)) for p in sorted((b / "labels").glob("*.png")))
    diffs = [float(np.abs(read_image(p) - read_image(b / "images" / p.name)).max()) for p in sorted((a / "images").glob("*.png"))]
    return {"labels_identical": labels_same, "image_max_abs_difference": max(diffs) if diffs else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--against", type=Path, help="another msaug checkout to measure side by side")
    ap.add_argument("--against-run", type=Path, help="the run folder the other checkout generates from (default: RUN_DIR)")
    ap.add_argument("--count", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gen-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.run_dir, args.count, args.gen_out)
        return
    if args.against_run and not args.against:
        ap.error("--against-run names the run folder of the --against checkout; give --against too")
    trees = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
    runs = {"this": args.run_dir, "against": args.against_run or args.run_dir}
    rates: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="msaug-genspeed-") as tmp:
        for repeat in range(args.repeats):
            for name, tree in trees.items():
                out = Path(tmp) / f"{name}-{repeat}"
                rates[name].append(run_once(tree, runs[name], args.count, out)["pairs_per_second"])
                print(f"repeat {repeat + 1}/{args.repeats} {name}: {rates[name][-1]:.1f} pairs/s", flush=True)
        same = compare_outputs(Path(tmp) / "this-0", Path(tmp) / "against-0") if args.against else {}
    summary = {
        "count": args.count, "repeats": args.repeats, "trees": {k: str(v) for k, v in trees.items()},
        "runs": {k: str(runs[k]) for k in trees},
        "pairs_per_second": {k: v for k, v in rates.items()},
        "median": {k: statistics.median(v) for k, v in rates.items()},
        **same,
    }
    if args.against:
        summary["ratio"] = summary["median"]["this"] / summary["median"]["against"]
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
