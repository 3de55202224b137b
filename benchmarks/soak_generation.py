"""Soak benchmark: generate many pairs at 64 px and sample the process's RSS as it goes.

    python benchmarks/soak_generation.py --count 10000 --size 64 --out /tmp/msaug-soak

Trains the classic chain (core.real_labels -> core.label_resize -> core.lab2im) on X-ray
phantoms, then generates ``--count`` pairs with ``msaug generate``'s code path while a
thread reads VmRSS from /proc every ``--every`` seconds. Memory is flat when the RSS after
warm-up does not grow with the number of pairs written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import threading
import time
from pathlib import Path

from msaug.pipeline.runner import RunOptions, generate_run, run_pipeline
from msaug.progress import SilentReporter
from msaug.train.device import tune_host_allocator

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/msaug-soak"))
    args = ap.parse_args()
    tune_host_allocator()  # as msaug's command line does (MSAUG_HOST_ALLOCATOR=system leaves glibc's defaults)
    if args.out.exists():
        shutil.rmtree(args.out)
    sets = [f"data.size={args.size}", "data.count=64", "stages.real_labels.params.size=32", "stages.label_resize.params.in_size=32",
            "generate.count=16", "generate.batch_size=32"]
    quiet = SilentReporter()
    run_pipeline(ROOT / "pipelines/examples/classic.yaml", RunOptions(out=args.out, profile="none", sets=sets, evaluate=False, show_progress=False), quiet)
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()
    synthetic = args.out / "synthetic" / "images"

    def sampler() -> None:
        start = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - start, rss_mb(), sum(1 for _ in synthetic.iterdir())))
            stop.wait(args.every)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    result = generate_run(args.out, args.count, None, "cpu", quiet, show_progress=False)
    stop.set()
    thread.join()
    warm = [s for s in samples if s[2] >= args.count * 0.1] or samples
    first, last = warm[: max(1, len(warm) // 10)], warm[-max(1, len(warm) // 10):]
    report = {
        "count": args.count,
        "size": args.size,
        "seconds": round(result.seconds, 1),
        "pairs_per_second": round(result.pairs_per_second, 1),
        "rss_samples": len(samples),
        "rss_mb_median_first_tenth_after_warmup": round(statistics.median(s[1] for s in first), 1),
        "rss_mb_median_last_tenth": round(statistics.median(s[1] for s in last), 1),
        "rss_mb_max": round(max(s[1] for s in samples), 1),
        "rss_mb_min_after_warmup": round(min(s[1] for s in warm), 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
