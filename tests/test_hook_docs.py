"""Every hook is documented in docs/writing-plugins.md with its signature, and tested (datasette's meta-tests).

The hook tests below install a real plugin (a module plus a .dist-info with an ``msaug``
entry point, what ``pip install`` leaves) and check what each hook registered.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest
import torch

from msaug import DataSpec, hookspecs
from msaug.plugins import load_registries
from tests.test_plugins import install_fake_distribution, site  # noqa: F401  (site is a fixture)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "writing-plugins.md"


def hook_specs() -> dict[str, object]:
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, f"{hookspecs.PROJECT}_spec")}


def signature(fn: object) -> str:
    """``def name(param: Type) -> None:`` as written in the docs (annotations are strings here)."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {fn.__name__}({params}) -> {sig.return_annotation}:"  # type: ignore[attr-defined]


def doc_sections() -> dict[str, str]:
    text = DOCS.read_text()
    reference = text.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\S+)\s*$", reference, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_there_are_hooks_to_check():
    assert set(hook_specs()) >= {"msaug_register_stages", "msaug_register_datasets", "msaug_register_segmenters", "msaug_register_label_metrics"}


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_hook_is_documented_with_signature_and_parameters(hook):
    sections = doc_sections()
    assert hook in sections, f"docs/writing-plugins.md: add a '### {hook}' section to the hook reference"
    section = sections[hook]
    assert signature(hook_specs()[hook]) in section, f"docs/writing-plugins.md: the {hook} section must show {signature(hook_specs()[hook])!r}"
    for param in inspect.signature(hook_specs()[hook]).parameters:  # type: ignore[arg-type]
        assert f"- `{param}`:" in section, f"docs/writing-plugins.md: document parameter {param!r} of {hook}"


def test_docs_document_no_hook_that_does_not_exist():
    assert set(doc_sections()) - set(hook_specs()) == set()


def test_every_hook_has_a_test():
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names |= {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}
    missing = {hook for hook in hook_specs() if f"test_hook_{hook}" not in names}
    assert missing == set(), f"write a test_hook_<name> test for {sorted(missing)}"


# --------------------------------------------------------------------------- one test per hook
def test_hook_msaug_register_stages(site):  # noqa: F811
    install_fake_distribution(site, "hookstagedist", "hookstage_mod", '''
from msaug import hookimpl
from msaug.builtin.stages import LabelResize

class Shrink(LabelResize):
    """Label map to a smaller label map."""

    description = "label -> smaller label"

@hookimpl
def msaug_register_stages(register):
    assert register(Shrink, name="hook.shrink").name == "hook.shrink"
''', entry="hookstage")
    reg = load_registries()
    entry = reg.stages.entry("hook.shrink")
    assert (entry.plugin, entry.description) == ("hookstage", "label -> smaller label")
    stage = entry.obj({"in_size": 16, "size": 8}, DataSpec(("a", "b"), "multilabel", 1, 32))
    assert stage.output.size == 8


def test_hook_msaug_register_datasets(site):  # noqa: F811
    install_fake_distribution(site, "hookdatadist", "hookdata_mod", '''
from msaug import hookimpl
from msaug.testing import tiny_dataset

@hookimpl
def msaug_register_datasets(register):
    register("hook.tiny", lambda config: tiny_dataset(size=config.size, count=config.count or 3), description="tiny discs")
''', entry="hookdata")
    from msaug import DataConfig, load_dataset

    reg = load_registries()
    assert reg.datasets.entry("hook.tiny").description == "tiny discs"
    data = load_dataset(DataConfig(dataset="hook.tiny", size=24, count=2), reg)
    assert len(data) == 2 and data[0].label.shape == (3, 24, 24)


def test_hook_msaug_register_segmenters(site):  # noqa: F811
    install_fake_distribution(site, "hooksegdist", "hookseg_mod", '''
import torch
from msaug import hookimpl

@hookimpl
def msaug_register_segmenters(register):
    register("hook.pixelwise", lambda in_channels, classes, **options: torch.nn.Conv2d(in_channels, classes, 1), description="1x1 conv")
''', entry="hookseg")
    reg = load_registries()
    net = reg.segmenters.get("hook.pixelwise")(3, 4)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 4, 16, 16)
    assert reg.segmenters.entry("hook.pixelwise").plugin == "hookseg"


def test_hook_msaug_register_label_metrics(site):  # noqa: F811
    install_fake_distribution(site, "hookmetricdist", "hookmetric_mod", '''
from msaug import hookimpl

@hookimpl
def msaug_register_label_metrics(register):
    register("hookdomain", "coverage", lambda labels, spec: {"coverage": float(labels[:, -1].mean())})
''', entry="hookmetric")
    reg = load_registries()
    spec = DataSpec(("background", "x"), "index", 1, 4, domain="hookdomain")
    metrics = dict(reg.label_metrics.for_domain("hookdomain"))
    labels = torch.zeros(2, 2, 4, 4)
    labels[:, 1, :2] = 1
    assert metrics["coverage"](labels, spec) == {"coverage": 0.5}
    assert "coverage" not in dict(reg.label_metrics.for_domain("other"))


# --------------------------------------------------------------------------- isolation, as msaug stages list shows it
def test_stages_list_reports_broken_plugins_by_distribution_and_lists_the_rest(site, monkeypatch):  # noqa: F811
    from click.testing import CliRunner

    from msaug.cli import cli
    from msaug.plugins import reset_registries

    install_fake_distribution(site, "brokendist", "brokenplug_mod", "import no_such_module_anywhere\n", entry="brokenplug")
    install_fake_distribution(site, "badhookdist", "badhook_mod",
                              "from msaug import hookimpl\n@hookimpl\ndef msaug_register_stages(registry):\n    pass\n", entry="badhook")
    install_fake_distribution(site, "clashdist", "raising_mod", '''
from msaug import hookimpl
from msaug.builtin.stages import LabelResize

@hookimpl
def msaug_register_stages(register):
    register(LabelResize, name="core.lab2im")
''', entry="raising")
    reset_registries()
    try:
        result = CliRunner().invoke(cli, ["stages", "list", "--json"])
        assert result.exit_code == 0, result.output
        listing = json.loads(result.stdout)
        failures = {f["plugin"]: f["reason"] for f in listing["failures"]}
        assert len(failures) == 3, listing["failures"]
        assert "No module named 'no_such_module_anywhere'" in failures["brokenplug (brokendist)"]
        assert "invalid hook implementation" in failures["badhook (badhookdist)"] and "registry" in failures["badhook (badhookdist)"]
        assert "'core.lab2im' from plugin 'raising' clashes with the one from 'msaug'" in failures["raising (clashdist)"]
        names = {row["name"]: row for row in listing["stages"]}
        assert names["core.lab2im"]["plugin"] == "msaug" and "gan.translator" in names

        table = CliRunner().invoke(cli, ["stages", "list"])
        assert "plugin brokenplug (brokendist)" in " ".join(table.output.split())

        monkeypatch.setenv("MSAUG_DISABLE_PLUGINS", "brokendist,badhook,raising")
        reset_registries()
        listing = json.loads(CliRunner().invoke(cli, ["stages", "list", "--json"]).stdout)
        assert listing["failures"] == []
    finally:
        reset_registries()
