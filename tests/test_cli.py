"""CLI exit codes and messages: user errors are one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from msaug.cli import cli
from tests.conftest import CLASSIC


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == "msaug, version 0.1.0"


def test_stages_list_json(runner):
    result = runner.invoke(cli, ["stages", "list", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)["stages"]}
    assert rows["core.lab2im"]["plugin"] == "msaug"
    assert rows["core.lab2im"]["input"] == "Label(2 classes, 256 px, multilabel)"
    assert rows["core.lab2im"]["output"] == "Image(1 ch, 256 px)"
    assert rows["core.real_labels"]["params"]["rotation"] == "8.0"


def test_stages_list_builds_no_network_and_pipeline_check_only_meta_ones(runner, monkeypatch):
    """Listing stages reads modalities from params: no layer is constructed. Checking a chain runs
    the networks on the meta device (shapes only, no memory) to refuse sizes they cannot handle."""
    import torch

    built: list[str] = []
    for layer in (torch.nn.Conv2d, torch.nn.Linear):
        def init(self, *args, _init=layer.__init__, **kwargs):
            _init(self, *args, **kwargs)
            built.append(self.weight.device.type)

        monkeypatch.setattr(layer, "__init__", init)
    result = runner.invoke(cli, ["stages", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["stages"]}
    for name in ("gan.label_generator", "gan.label_upscaler", "gan.translator", "gan.joint", "xray.image", "fundus.joint"):
        assert "needs params" not in rows[name]["input"], rows[name]
    assert rows["gan.translator"]["output"] == "Image(1 ch, 256 px)"
    assert built == []
    checked = runner.invoke(cli, ["pipeline", "check", "pipelines/xray.yaml", "--set", "stages.image.budget={steps: 7, seconds: 30}"])
    assert checked.exit_code == 0, checked.output
    stage_lines = [" ".join(line.split()) for line in checked.stdout.splitlines() if line.lstrip().startswith("3. ")]
    assert stage_lines and stage_lines[0].startswith("3. xray.image Label(5 classes, 128 px, multilabel) → Image(1 ch, 128 px) (budget 7 steps or 30 s, "), checked.stdout
    assert built and set(built) == {"meta"}


def test_stages_list_table(runner):
    result = runner.invoke(cli, ["stages", "list", "--filter", "core.*"])
    assert result.exit_code == 0
    assert "core.real_labels" in result.stdout and "gan." not in result.stdout


def test_datasets_list(runner):
    result = runner.invoke(cli, ["datasets", "list", "--json"])
    names = {r["name"] for r in json.loads(result.stdout)["datasets"]}
    assert {"folder", "synthetic"} <= names


def test_pipeline_check_ok_and_broken(runner, classic_yaml, tmp_path):
    result = runner.invoke(cli, ["pipeline", "check", str(classic_yaml)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.stdout and "product: Image(1 ch, 32 px) + Label(3 classes, 32 px, index)" in result.stdout
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "1. core.real_labels Noise(1) → Label(3 classes, 16 px, index) (no training)" in lines, result.stdout
    broken = {**CLASSIC, "stages": [{"use": "core.real_labels", "params": {"size": 16}}, {"use": "core.lab2im"}]}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = runner.invoke(cli, ["pipeline", "check", str(path)])
    assert result.exit_code == 2
    assert "error: stage 2 'core.lab2im' expects Label(3 classes, 32 px, index) but stage 1 'core.real_labels' produced Label(3 classes, 16 px, index)" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_pipeline_run_cli(runner, classic_yaml, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(cli, ["pipeline", "run", str(classic_yaml), "--out", str(out), "--quiet", "--set", "generate.count=4"])
    assert result.exit_code == 0, result.output
    assert "profile: quick" in result.stderr
    assert len(list((out / "synthetic/images").iterdir())) == 4
    again = runner.invoke(cli, ["pipeline", "run", str(classic_yaml), "--out", str(out), "--quiet"])
    assert again.exit_code == 2 and "pass --resume" in again.stderr
    both = runner.invoke(cli, ["pipeline", "run", str(classic_yaml), "--resume", "--overwrite"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    gen = runner.invoke(cli, ["generate", str(out), "--count", "6", "--shard", "3/2", "--quiet"])
    assert gen.exit_code == 2 and "need 0 <= I < N" in gen.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pipeline", "check", "nope.yaml"], "nope.yaml: pipeline file not found"),
        (["pipeline", "run", "nope.yaml", "--device", "tpu"], "Invalid value for '--device'"),
        (["generate", ".", "--count", "2"], "no pipeline.resolved.yaml"),
    ],
)
def test_user_errors(runner, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_console_script_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "msaug", "pipeline", "check", str(tmp_path / "x.yaml")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "x.yaml: pipeline file not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("kind", "code"), [("user", 2), ("internal", 1)])
def test_errors_with_bracketed_text_are_printed_verbatim(runner, tmp_path, monkeypatch, kind, code):
    # gloo and many file systems put "[/path:line]" into messages; rich would read it as markup
    from msaug.errors import DataError

    text = "Connection closed by peer [/src/gloo/transport/tcp/pair.cc:561] in [bold]data[/bold]"

    def boom(*args, **kwargs):
        raise DataError(text) if kind == "user" else RuntimeError(text)

    monkeypatch.setattr("msaug.pipeline.runner.prepare", boom)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(CLASSIC))
    result = runner.invoke(cli, ["pipeline", "check", str(path)])
    assert result.exit_code == code, result.output
    assert text in result.stderr.replace("\n", " ")
    assert "MarkupError" not in result.output


def test_tables_are_never_cut_without_a_terminal(capsys):
    """In a log file (no terminal) the segment metrics table keeps every digit (it read "0.235±…" at 80 columns)."""
    from msaug.cli_segment import _print_metrics
    from msaug.segment.metrics import METRICS

    stat = {m: {"mean": 0.2351, "std": 0.0123} for m in METRICS}
    _print_metrics("test metrics, real protocol", {"classes": {"left_clavicle": stat, "right_lung": stat}, "mean": stat})
    out = capsys.readouterr().out
    assert "…" not in out
    for row in ("left_clavicle", "right_lung", "mean (foreground)"):
        line = next(line for line in out.splitlines() if row in line)
        assert line.count("0.235±0.012") == len(METRICS), line


def test_piped_output_is_not_wrapped_at_80_columns():
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "msaug", "stages", "list", "--filter", "core.*"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "core.lab2im" in line)
    assert "per-structure intensities from the real data" in line and len(line) > 80
