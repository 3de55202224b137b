"""End to end on the core's `folder` data: the gan.* chain and the gan.joint baseline through `msaug pipeline run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from .conftest import images_for, synthetic_index_labels

CHAIN = """
name: gan-chain
data: {dataset: folder, root: data, size: 16, classes: [background, organ, lesion], encoding: index, channels: 1}
stages:
  - {use: gan.label_generator, params: {size: 8, log_every: 2}, budget: {steps: 4}}
  - {use: gan.label_upscaler, params: {in_size: 8, log_every: 2}, budget: {steps: 4}}
  - {use: gan.translator, params: {log_every: 2}, budget: {steps: 4}}
generate: {count: 6, batch_size: 4}
"""

JOINT = """
name: gan-joint
data: {dataset: folder, root: data, size: 16, classes: [background, organ, lesion], encoding: index, channels: 1}
stages:
  - {use: gan.joint, params: {log_every: 2}, budget: {steps: 4}}
generate: {count: 6, batch_size: 4}
"""


def write_folder(root: Path, n: int = 10) -> None:
    labels = synthetic_index_labels(n)
    images = images_for(labels)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        PILImage.fromarray((images[i, 0].numpy() * 255).astype(np.uint8)).save(root / "images" / f"case{i:02d}.png")
        PILImage.fromarray(labels[i].argmax(0).numpy().astype(np.uint8)).save(root / "labels" / f"case{i:02d}.png")


@pytest.mark.slow
@pytest.mark.parametrize("yaml_text, stages", [(CHAIN, 3), (JOINT, 1)], ids=["chain", "joint"])
def test_pipeline_runs_end_to_end_on_folder_data(yaml_text: str, stages: int, tmp_path: Path) -> None:
    write_folder(tmp_path / "data")
    (tmp_path / "p.yaml").write_text(yaml_text)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "msaug", "pipeline", "run", str(tmp_path / "p.yaml"), "--out", str(out),
           "--profile", "none", "--no-evaluate", "--quiet", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    stage_dirs = sorted(p for p in (out / "stages").iterdir() if p.is_dir())
    assert len(stage_dirs) == stages
    for d in stage_dirs:
        assert [json.loads(x)["step"] for x in (d / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    manifest = [json.loads(x) for x in (out / "synthetic" / "manifest.jsonl").read_text().splitlines()]
    assert [m["index"] for m in manifest] == list(range(6))
    assert len(list((out / "synthetic" / "images").glob("*.png"))) == 6
    label = np.asarray(PILImage.open(next((out / "synthetic" / "labels").glob("*.png"))))
    assert label.shape == (16, 16) and set(np.unique(label).tolist()) <= {0, 1, 2}


def test_fitted_stages_release_their_training_state_and_still_generate(tmp_path: Path, monkeypatch) -> None:
    """Once saved, a stage drops its trainer (discriminator, optimisers, training tensors on the device):
    generation and the evaluation after it use the EMA generator only."""
    import torch

    from msaug.pipeline.generate import run_chain
    from msaug.pipeline.runner import RunState, fit_stages, prepare, split_data
    from msaug.progress import SilentReporter

    write_folder(tmp_path / "data")
    (tmp_path / "p.yaml").write_text(CHAIN)
    monkeypatch.chdir(tmp_path)
    prepared = prepare(tmp_path / "p.yaml", profile="none")
    state = RunState(tmp_path / "run", torch.device("cpu"))
    state.out.mkdir()
    split_data(prepared, state)
    fit_stages(prepared, state, resume=False, reporter=SilentReporter())
    stages = [cs.stage for cs in prepared.chain.stages]
    assert len(stages) == 3 and all(stage.fitted and stage.trainer is None for stage in stages)
    images, labels = run_chain(prepared.chain, [0, 1], 0, torch.device("cpu"))
    assert images.shape == (2, 1, 16, 16) and labels.shape == (2, 3, 16, 16)
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
