"""End to end on the classic built-in chain: run folder, resume, determinism, sharding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from msaug.errors import CheckpointError, ConfigError, DataError
from msaug.io import sha256_file
from msaug.pipeline.runner import RunOptions, generate_run, run_pipeline
from msaug.synthetic import SyntheticDataset
from tests.conftest import CLASSIC, write_folder_dataset


def run(path: Path, out: Path, **kw) -> dict:
    return run_pipeline(path, RunOptions(out=out, profile="quick", show_progress=False, **kw))


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*.png"))}


def test_run_writes_the_run_directory(classic_yaml, tmp_path):
    out = tmp_path / "run"
    report = run(classic_yaml, out)
    for name in ("pipeline.resolved.yaml", "split.json", "report.json", "report.md", "grid.png",
                 "stages/01-real_labels/stage.safetensors", "stages/02-label_resize/stage.json",
                 "stages/03-lab2im/stage.safetensors", "synthetic/manifest.jsonl", "synthetic/dataset.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "synthetic/images").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    manifest = [json.loads(line) for line in (out / "synthetic/manifest.jsonl").read_text().splitlines()]
    assert [m["index"] for m in manifest] == list(range(6))
    assert manifest[0]["sha256"]["image"] == sha256_file(out / "synthetic/images/000000.png")
    assert set(manifest[0]["stages"]) == {"01-real_labels", "02-label_resize", "03-lab2im"}
    # 16-bit grey images, index label maps with valid values
    img = PILImage.open(out / "synthetic/images/000000.png")
    assert img.mode == "I;16" and img.size == (32, 32)
    lab = np.asarray(PILImage.open(out / "synthetic/labels/000000.png"))
    assert lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2}
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 6 and len(split["test"]) == 2 and not set(split["train"]) & set(split["test"])
    assert report["generate"]["count"] == 6 and report["data"]["train"] == 6
    assert report["stages"][2]["summary"]["images"] == 6
    assert json.loads((out / "report.json").read_text())["pipeline"] == "shapes-classic"
    resolved = (out / "pipeline.resolved.yaml").read_text()
    assert "# profile: quick" in resolved and "elastic: 0.03" in resolved and "count: 6" in resolved
    ds = SyntheticDataset(out / "synthetic", verify=True)
    assert len(ds) == 6 and ds[0].label.shape == (3, 32, 32)


def test_same_seed_same_files_and_existing_out_refused(classic_yaml, tmp_path):
    run(classic_yaml, tmp_path / "a")
    run(classic_yaml, tmp_path / "b")
    assert files(tmp_path / "a" / "synthetic") == files(tmp_path / "b" / "synthetic")
    with pytest.raises(ConfigError, match="the folder exists and is not empty; pass --resume .* or --overwrite"):
        run(classic_yaml, tmp_path / "a")
    run(classic_yaml, tmp_path / "a", overwrite=True)
    assert files(tmp_path / "a" / "synthetic") == files(tmp_path / "b" / "synthetic")
    run(classic_yaml, tmp_path / "c", seed=5)
    assert files(tmp_path / "c" / "synthetic") != files(tmp_path / "a" / "synthetic")


def test_resume_skips_finished_stages_and_pairs(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run(classic_yaml, out)
    reference = files(out / "synthetic")
    # simulate a kill: one stage never finished, two pairs lost, a manifest line cut short
    (out / "stages/03-lab2im/stage.json").unlink()
    weights_before = (out / "stages/01-real_labels/stage.safetensors").stat().st_mtime_ns
    for i in (2, 5):
        (out / f"synthetic/images/{i:06d}.png").unlink()
    manifest = out / "synthetic/manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])
    run(classic_yaml, out, resume=True)
    assert (out / "stages/01-real_labels/stage.safetensors").stat().st_mtime_ns == weights_before
    assert files(out / "synthetic") == reference
    assert [json.loads(x)["index"] for x in manifest.read_text().splitlines()] == list(range(6))


def test_resume_refuses_changed_pipeline(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run(classic_yaml, out)
    with pytest.raises(ConfigError, match=r"the pipeline changed since this run started.*data.size: 32 -> 24"):
        run_pipeline(classic_yaml, RunOptions(out=out, profile="quick", sets=["data.size=24"], resume=True, show_progress=False))


def test_generate_shards_give_identical_files(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run(classic_yaml, out)
    whole = tmp_path / "whole"
    # more pairs from the finished run, in one go and in three shards
    generate_run(out, 11, None, show_progress=False)
    reference = files(out / "synthetic")
    assert len(reference) == 22
    (out / "synthetic").rename(whole)
    for i in (2, 0, 1):
        result = generate_run(out, 11, (i, 3), show_progress=False)
        assert result.complete == (i == 1)
    assert result.complete
    assert files(out / "synthetic") == reference
    manifest = [json.loads(x) for x in (out / "synthetic/manifest.jsonl").read_text().splitlines()]
    assert [m["index"] for m in manifest] == list(range(11))
    assert not list((out / "synthetic").glob("manifest.shard-*"))


def test_generate_refuses_unfinished_or_tampered_stage(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run(classic_yaml, out)
    weights = out / "stages/03-lab2im/stage.safetensors"
    weights.write_bytes(weights.read_bytes()[:-3] + b"abc")
    with pytest.raises(CheckpointError, match="sha256 does not match stage.json"):
        generate_run(out, 3, None, show_progress=False)
    (out / "stages/03-lab2im/stage.json").unlink()
    with pytest.raises(CheckpointError, match="has not finished training"):
        generate_run(out, 3, None, show_progress=False)
    with pytest.raises(Exception, match="no pipeline.resolved.yaml"):
        generate_run(tmp_path, 3, None, show_progress=False)


def test_labels_only_dataset_renders_images_from_default_intensities(tmp_path):
    """A labels-only folder runs end to end: core.lab2im draws each class at its documented level."""
    write_folder_dataset(tmp_path / "data", images=False)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(CLASSIC))
    out = tmp_path / "run"
    run(path, out, sets=["generate.count=12"])
    info = json.loads((out / "stages/03-lab2im/stage.json").read_text())
    assert info["summary"] == {"images": 0, "intensities": [0.1, 0.5, 0.9], "source": "defaults (labels-only data)"}
    ds = SyntheticDataset(out / "synthetic")
    assert len(ds) == 12
    pixels = {k: np.concatenate([ds[i].image[0][ds[i].label[k] > 0.5] for i in range(len(ds))]) for k in range(3)}
    # background 0.1, disc 0.5, square 0.9, up to the jitter, blur and bias field (which
    # pulls the 3-5 px squares towards their surroundings)
    assert abs(np.median(pixels[0]) - 0.1) < 0.05
    assert abs(np.median(pixels[1]) - 0.5) < 0.1
    assert 0.65 < np.median(pixels[2]) <= 0.9


def test_labels_only_dataset_rejects_an_image_learning_stage_before_training(tmp_path):
    from msaug.pipeline.runner import prepare

    write_folder_dataset(tmp_path / "data", images=False)
    cfg = {**CLASSIC, "stages": [*CLASSIC["stages"][:2], {"use": "gan.translator", "budget": {"steps": 2}}]}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataError, match=r"stage 3 'gan.translator' learns images, but dataset 'folder' has labels only \(no .*/data/images folder\); .*core.lab2im"):
        prepare(path, profile="quick")


def test_lab2im_learns_real_intensities(classic_yaml, tmp_path):
    """The classic image stage reproduces the per-structure intensities of the real images."""
    out = tmp_path / "run"
    run(classic_yaml, out, sets=["generate.count=24"])
    ds = SyntheticDataset(out / "synthetic")
    means = {1: [], 0: []}
    for i in range(len(ds)):
        s = ds[i]
        for k in means:
            mask = s.label[k] > 0.5
            if mask.sum() > 20:
                means[k].append(float(s.image[0][mask].mean()))
    # fixture: background 0.2, disc 0.7 (plus noise, blur and bias field)
    assert abs(np.median(means[0]) - 0.2) < 0.06
    assert abs(np.median(means[1]) - 0.7) < 0.1


@pytest.mark.slow
def test_evaluate_block_fills_report_and_manifest_qc(classic_yaml, tmp_path):
    out = tmp_path / "run"
    sets = ["evaluate.segmenter.steps=4", "evaluate.segmenter.batch_size=4", "evaluate.protocols=[real,synth]"]
    cfg = yaml.safe_load(classic_yaml.read_text())
    cfg["evaluate"] = {}
    classic_yaml.write_text(yaml.safe_dump(cfg))
    report = run_pipeline(classic_yaml, RunOptions(out=out, profile="quick", sets=sets, show_progress=False))
    protocols = report["evaluation"]["protocols"]
    assert set(protocols) == {"real", "synth"}
    assert 0 <= protocols["synth"]["metrics"]["mean"]["dice"]["mean"] <= 1
    assert "scores" not in report["evaluation"]["qc"]
    manifest = [json.loads(x) for x in (out / "synthetic/manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 6 and all(0 <= m["qc_dice"] <= 1 for m in manifest)
    assert "## Segmentation evaluation" in (out / "report.md").read_text()


def test_resolved_yaml_shows_the_sizes_each_stage_works_at(classic_yaml):
    """Sizes left to the data are resolved once, by the stage, and written out: no ``size: null``."""
    from msaug.pipeline.runner import prepare, resolved_yaml

    cfg = yaml.safe_load(classic_yaml.read_text())
    cfg["stages"] = [
        {"use": "gan.label_generator", "params": {"size": 8}, "budget": {"steps": 1}},
        {"use": "gan.label_upscaler", "budget": {"steps": 1}},  # out_size: data.size; in_size: a quarter of it
        {"use": "gan.translator", "budget": {"steps": 1}},
    ]
    cfg["evaluate"] = {"segmenter": {"steps": 2}}
    classic_yaml.write_text(yaml.safe_dump(cfg))
    prepared = prepare(classic_yaml, "quick", training=False)
    resolved = yaml.safe_load(resolved_yaml(prepared))
    params = [s["params"] for s in resolved["stages"]]
    assert params[0]["size"] == 8
    assert (params[1]["in_size"], params[1]["out_size"]) == (8, 32)
    assert params[2]["size"] == 32
    assert resolved["evaluate"]["segmenter"]["size"] == 32
    upscaler = prepared.chain.stages[1].stage
    assert (upscaler.in_size, upscaler.out_size) == (8, 32) and str(upscaler.output) == "Label(3 classes, 32 px, index)"
    assert "size: null" not in resolved_yaml(prepared)


def test_resume_accepts_a_run_whose_resolved_yaml_left_sizes_unresolved(classic_yaml, tmp_path):
    """Runs of an earlier msaug wrote ``size: null`` where the stage used data.size: resuming them is no change."""
    out = tmp_path / "run"
    run(classic_yaml, out)
    resolved = out / "pipeline.resolved.yaml"
    data = yaml.safe_load(resolved.read_text())
    assert data["stages"][2]["params"]["size"] == 32
    data["stages"][2]["params"]["size"] = None  # as written before sizes were resolved
    resolved.write_text(yaml.safe_dump(data, sort_keys=False))
    run(classic_yaml, out, resume=True)  # not refused; the stages are kept
    assert yaml.safe_load(resolved.read_text())["stages"][2]["params"]["size"] == 32
    data["stages"][2]["params"]["size"] = 16  # a different size is a change to what the stage learnt
    resolved.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"stages\[2\]\.params\.size: 16 -> 32"):
        run(classic_yaml, out, resume=True)
