"""``torchrun -m msaug pipeline run``: ranks split generation and write the same files as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from msaug.io import sha256_file
from msaug.pipeline.runner import RunOptions, run_pipeline
from tests.conftest import CLASSIC


@pytest.mark.slow
def test_two_ranks_shard_generation_identically(tmp_path, shapes_dir):
    cfg = {**CLASSIC, "generate": {"count": 20, "batch_size": 4}, "profiles": {}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    single = tmp_path / "single"
    run_pipeline(path, RunOptions(out=single, show_progress=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "msaug", "pipeline", "run", str(path), "--out", str(tmp_path / "ddp"), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[:4000] + "\n...\n" + proc.stderr[-2000:]
    names = sorted(p.relative_to(single) for p in (single / "synthetic").rglob("*.png"))
    assert len(names) == 40
    for name in names:
        assert sha256_file(tmp_path / "ddp" / name) == sha256_file(single / name), name
    manifest = [json.loads(x) for x in (tmp_path / "ddp/synthetic/manifest.jsonl").read_text().splitlines()]
    assert [m["index"] for m in manifest] == list(range(20))
    assert (tmp_path / "ddp/report.json").is_file()
