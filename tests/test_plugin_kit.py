"""The plugin kit: msaug.testing (checks, tiny samples, the StageContract) and the scaffold."""

from __future__ import annotations

import textwrap

import pytest
import torch

from msaug import Label, Image, Noise
from msaug.builtin.stages import LabelResize
from msaug.testing import check_output, tiny_dataset, tiny_params, tiny_spec

pytest_plugins = ["pytester"]


# --------------------------------------------------------------------------- tiny samples and checks
@pytest.mark.parametrize("encoding,channels,roi", [("index", 1, False), ("multilabel", 3, True)])
def test_tiny_dataset_is_real_like_and_reproducible(encoding, channels, roi):
    data = tiny_dataset(size=24, count=5, encoding=encoding, channels=channels, roi=roi, seed=3)
    assert data.spec == tiny_spec(24, encoding, channels, roi)
    assert len(data) == 5
    first = data[0]
    assert first.image.shape == (channels, 24, 24) and first.image.dtype.name == "float32"
    assert first.label.shape == (len(data.spec.classes), 24, 24)
    check_output(torch.stack([torch.as_tensor(data[i].label) for i in range(5)]), data.spec.label, 5)
    check_output(torch.stack([torch.as_tensor(data[i].image) for i in range(5)]), data.spec.image, 5)
    structures = first.label[1:] if encoding == "index" else first.label
    assert (structures.sum(axis=(1, 2)) > 0).all(), "every structure appears in every case"
    if encoding == "multilabel":  # the bar crosses the disc: channels overlap somewhere
        assert any((data[i].label[0] * data[i].label[1]).sum() > 0 for i in range(5))
    if roi:
        assert (first.image[:, ~first.roi] == 0).all() and (first.label[:, ~first.roi] == 0).all()
    again = tiny_dataset(size=24, count=5, encoding=encoding, channels=channels, roi=roi, seed=3)
    assert (again[4].image == data[4].image).all()
    assert not (tiny_dataset(size=24, count=5, encoding=encoding, channels=channels, roi=roi, seed=4)[4].image == data[4].image).all()


def test_check_output_names_what_is_wrong():
    label = Label(("background", "a"), 8, "index")
    good = torch.zeros(2, 2, 8, 8)
    good[:, 0] = 1
    check_output(good, label, 2)
    with pytest.raises(AssertionError, match=r"expects shape \[B, 2, 8, 8\], got \[2, 2, 8, 4\]"):
        check_output(good[..., :4], label)
    with pytest.raises(AssertionError, match="float32"):
        check_output(good.double(), label)
    with pytest.raises(AssertionError, match="hard 0/1"):
        check_output(good * 0.7, label)
    overlapping = good.clone()
    overlapping[0, 1, 0, 0] = 1
    with pytest.raises(AssertionError, match="1 pixels have"):
        check_output(overlapping, label)
    check_output(overlapping, Label(("a", "b"), 8, "multilabel"))  # overlap is fine for multilabel
    with pytest.raises(AssertionError, match=r"in \[0, 1\], got \[-0.5"):
        check_output(torch.full((1, 3, 8, 8), -0.5), Image(3, 8))
    with pytest.raises(AssertionError, match="NaN"):
        check_output(torch.full((1, 4), float("nan")), Noise(4))
    with pytest.raises(AssertionError, match="batch of 3"):
        check_output(torch.zeros(2, 4), Noise(4), batch=3)


def test_tiny_params_shrinks_what_validates_and_keeps_defaults_otherwise():
    from msaug.train.stages import LabelUpscalerStage

    assert tiny_params(LabelResize, 32) == {"size": 16, "in_size": 8}
    params = tiny_params(LabelUpscalerStage, 32)
    assert params == {"in_size": 8, "width": 4, "batch_size": 2, "noise_channels": 1}
    stage = LabelUpscalerStage(params, tiny_spec(32))
    assert (stage.input.size, stage.output.size) == (8, 32)


# --------------------------------------------------------------------------- the contract catches broken stages
BROKEN_STAGES = '''
import torch
from pydantic import ConfigDict
from msaug import Budget, FitContext, Label, Noise, Pairs, Stage, StageParams
from msaug.testing import StageContract


class PickParams(StageParams):
    pass


class PickLabel(Stage):
    """Noise -> a training label map picked at random and shifted by a few pixels (a well-behaved stage)."""

    name = "kit.pick"
    Params = PickParams

    def __init__(self, params, data):
        super().__init__(params, data)
        self.labels = None

    @property
    def input(self):
        return Noise(1)

    @property
    def output(self):
        return self.data.label

    def fit(self, pairs, budget, ctx):
        self.labels = pairs.targets.clone()
        steps = budget.steps if budget.steps is not None else 1
        for step in range(1, min(steps, 3) + 1):
            if ctx.progress:
                ctx.progress(step, budget.steps, {})
        return {"cases": len(pairs)}

    def pick(self, g):
        which = int(torch.randint(len(self.labels), (1,), generator=g))
        shift = int(torch.randint(-3, 4, (1,), generator=g))
        return self.labels[which].roll(shift, dims=-1)

    def generate(self, x, rng):
        return torch.stack([self.pick(g) for g in rng._torch])

    def state_dict(self):
        return {"labels": self.labels}

    def load_state_dict(self, state):
        self.labels = state["labels"]


class SoftLabels(PickLabel):
    """Returns soft probabilities instead of hard label maps."""

    name = "kit.soft"

    def generate(self, x, rng):
        return super().generate(x, rng) * 0.9


class BatchCoupled(PickLabel):
    """Draws every row's jitter from stream 0: rows change with the batch they land in."""

    name = "kit.coupled"

    def generate(self, x, rng):
        return torch.stack([self.pick(rng._torch[0]) for _ in range(len(rng))])


class Forgetful(PickLabel):
    """Saves nothing, so a restored stage has forgotten the training data (and makes empty maps)."""

    name = "kit.forgetful"

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        self.labels = torch.zeros(1, self.output.channels, self.output.size, self.output.size)


class Greedy(PickLabel):
    """Trains five steps whatever the budget says."""

    name = "kit.greedy"

    def fit(self, pairs, budget, ctx):
        self.labels = pairs.targets.clone()
        for step in range(1, 6):
            ctx.progress(step, budget.steps, {})
        return {"steps": 5}


class LenientParams(StageParams):
    model_config = ConfigDict(extra="ignore")


class Lenient(PickLabel):
    """Silently ignores misspelt params."""

    name = "kit.lenient"
    Params = LenientParams


class TestKit(StageContract):
    stages = [PickLabel, SoftLabels, BatchCoupled, Forgetful, Greedy, Lenient]
    datasets = {"*": ["tiny-index-grey", "tiny-multilabel-rgb"]}
'''


def test_contract_passes_a_good_stage_and_catches_each_broken_one(pytester):
    pytester.makepyfile(test_broken=BROKEN_STAGES)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = {}
    for report in result.reprec.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            test, params = report.nodeid.split("::")[-1].split("[")
            outcomes.setdefault((params.split("-tiny")[0], test), set()).add(report.outcome)
    failed = {key for key, seen in outcomes.items() if "failed" in seen}
    assert failed == {
        ("kit.soft", "test_generate_matches_declared_modalities"),
        ("kit.soft", "test_generate_is_deterministic"),
        ("kit.soft", "test_row_depends_only_on_its_input_and_stream"),
        ("kit.soft", "test_state_dict_round_trip"),
        ("kit.coupled", "test_row_depends_only_on_its_input_and_stream"),
        ("kit.forgetful", "test_state_dict_round_trip"),
        ("kit.greedy", "test_fit_respects_step_budget"),
        ("kit.lenient", "test_params_reject_unknown_keys"),
    }
    tests_per_stage = {test for (_, test) in outcomes}
    assert len(tests_per_stage) == 9
    result.stdout.fnmatch_lines(["*hard 0/1 label maps*", "*Lenient.Params must keep extra='forbid'*"])


def test_fixtures_come_from_the_pytest11_entry_point(pytester):
    pytester.makepyfile(
        test_fixtures=textwrap.dedent(
            """
            def test_fixtures(tiny_dataset, tiny_multilabel_dataset, tiny_label, tiny_image, tiny_noise, make_tiny_dataset):
                assert tiny_dataset.spec.encoding == "index" and len(tiny_dataset) == 6
                assert tiny_multilabel_dataset.spec.has_roi and tiny_multilabel_dataset.spec.channels == 3
                assert tuple(tiny_label.shape) == (4, 3, 32, 32)
                assert tuple(tiny_image.shape) == (4, 1, 32, 32)
                assert tuple(tiny_noise.shape) == (4, 16)
                assert make_tiny_dataset(size=16, count=2).spec.size == 16
            """
        )
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


# --------------------------------------------------------------------------- msaug plugin new
def test_plugin_new_writes_a_complete_package(tmp_path):
    from click.testing import CliRunner

    from msaug.cli import cli

    target = tmp_path / "lesions"
    result = CliRunner().invoke(cli, ["plugin", "new", "skin_lesions", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "pip install -e" in result.output
    files = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert files == {
        "README.md", "pipeline.yaml", "pyproject.toml",
        "src/msaug_skin_lesions/__init__.py", "src/msaug_skin_lesions/plugin.py", "src/msaug_skin_lesions/stages.py",
        "src/msaug_skin_lesions/data.py", "src/msaug_skin_lesions/py.typed",
        "tests/test_stages.py", "tests/test_data.py",
    }
    pyproject = (target / "pyproject.toml").read_text()
    assert 'name = "msaug-skin-lesions"' in pyproject
    assert '[project.entry-points.msaug]\nskin_lesions = "msaug_skin_lesions.plugin"' in pyproject
    for path in target.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), path
    for source in target.rglob("*.py"):
        compile(source.read_text(), str(source), "exec")
    assert 'stages = ["skin_lesions.class_colour"]' in (target / "tests/test_stages.py").read_text()


@pytest.mark.parametrize("name", ["MyDomain", "9lives", "with-dash", ""])
def test_plugin_new_rejects_names_that_cannot_prefix_stages(tmp_path, name):
    from click.testing import CliRunner

    from msaug.cli import cli

    result = CliRunner().invoke(cli, ["plugin", "new", name, "--dir", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert f"plugin name {name!r}: use a lower-case Python identifier" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["class", "import"])
def test_plugin_new_says_a_keyword_is_a_keyword(tmp_path, name):
    from click.testing import CliRunner

    from msaug.cli import cli

    result = CliRunner().invoke(cli, ["plugin", "new", name, "--dir", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert f"plugin name {name!r} is a Python keyword" in result.output and f"'{name}_maps'" in result.output
    assert "lower-case" not in result.output  # it is lower-case already
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("name", "taken_by"),
    [("msaug", "msaug itself"), ("gan", "msaug's own stages (gan.*)"), ("xray", "the installed plugin 'xray' (msaug-xray)")],
)
def test_plugin_new_refuses_names_that_clash_with_installed_plugins(tmp_path, name, taken_by):
    from click.testing import CliRunner

    from msaug.cli import cli

    result = CliRunner().invoke(cli, ["plugin", "new", name, "--dir", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert f"plugin name {name!r} is taken by {taken_by}" in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()


def test_plugin_new_never_overwrites(tmp_path):
    from click.testing import CliRunner

    from msaug.cli import cli

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["plugin", "new", "taken", "--dir", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "already exists and is not an empty folder" in result.output
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_scaffold_installs_registers_and_passes_its_own_tests(tmp_path):
    """The template itself is tested: pip-install the scaffold, list its stage, run its generated tests."""
    import json
    import os
    import subprocess
    import sys

    from msaug.cli_plugin import scaffold

    package = tmp_path / "mydomain"
    scaffold("mydomain", package)
    site = tmp_path / "site"  # installed beside the test environment, not into it: the venv stays as it was
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run([sys.executable, "-m", "msaug", "stages", "list", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["stages"]}
    assert rows["mydomain.class_colour"]["plugin"] == "mydomain"
    assert rows["mydomain.class_colour"]["output"] == "Image(1 ch, 256 px)"
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
        capture_output=True, text=True, env=env, cwd=package, timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "11 passed" in tests.stdout  # 9 contract tests + the stage's and the dataset's own test
