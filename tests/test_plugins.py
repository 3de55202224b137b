"""Registries, hook isolation, entry-point discovery and MSAUG_DISABLE_PLUGINS."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from msaug import Stage, UnknownNameError
from msaug.builtin.stages import LabelResize, RealLabels
from msaug.plugins import DuplicateNameWarning, StageRegistry, load_registries

TINY_PLUGIN = '''
from msaug import hookimpl
from msaug.builtin.stages import LabelResize

class TinyResize(LabelResize):
    """Tiny test stage."""

@hookimpl
def msaug_register_stages(register):
    register(TinyResize, name="tiny.resize")

@hookimpl
def msaug_register_datasets(register):
    register("tiny.data", lambda config: None, description="tiny")
'''


def install_fake_distribution(site: Path, dist: str, module: str, source: str, entry: str | None = None) -> None:
    """Write a module and a .dist-info with an ``msaug`` entry point: what pip install leaves."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[msaug]\n{entry or dist} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith(("tinyplug", "brokenplug", "badhook", "raising"))]:
        del sys.modules[name]


def test_builtins_register_through_hooks():
    reg = load_registries(load_entry_points=False)
    assert {"core.real_labels", "core.label_resize", "core.lab2im"} <= set(reg.stages.names())
    assert reg.stages.entry("core.lab2im").plugin == "msaug"
    assert {"folder", "synthetic"} <= set(reg.datasets.names())


def test_unknown_name_suggests_closest():
    reg = load_registries(load_entry_points=False)
    with pytest.raises(UnknownNameError) as err:
        reg.stages.get("core.lab2img")
    assert "Did you mean 'core.lab2im'?" in str(err.value)
    assert "Valid names:" in str(err.value)


def test_duplicate_name_warns_and_keeps_first():
    reg = StageRegistry()
    reg.current_plugin = "first"
    reg(RealLabels)
    reg.current_plugin = "second"
    with pytest.warns(DuplicateNameWarning, match="'core.real_labels' from plugin 'second' clashes with the one from 'first'"):
        reg(LabelResize, name="core.real_labels")
    assert reg.entry("core.real_labels").plugin == "first"
    assert reg.get("core.real_labels").__name__ == "RealLabels"
    assert reg.failures and reg.failures[0].plugin == "second"


def test_register_rejects_non_stage():
    with pytest.raises(TypeError, match="msaug.Stage subclass"):
        StageRegistry()(dict)  # type: ignore[arg-type]


def test_entry_point_plugin_is_discovered(site):
    install_fake_distribution(site, "tinyplug", "tinyplug_mod", TINY_PLUGIN)
    reg = load_registries()
    assert "tiny.resize" in reg.stages
    assert reg.stages.entry("tiny.resize").plugin == "tinyplug"
    assert issubclass(reg.stages.get("tiny.resize"), Stage)
    assert reg.stages.get("tiny.resize").name == "tiny.resize"
    assert "tiny.data" in reg.datasets


def test_disable_plugins_env(site, monkeypatch):
    install_fake_distribution(site, "tinyplug", "tinyplug_mod", TINY_PLUGIN)
    monkeypatch.setenv("MSAUG_DISABLE_PLUGINS", "somethingelse, tinyplug")
    reg = load_registries()
    assert "tiny.resize" not in reg.stages
    assert "core.lab2im" in reg.stages


def test_broken_plugins_are_reported_not_fatal(site):
    install_fake_distribution(site, "brokenplug", "brokenplug_mod", "raise RuntimeError('boom at import')\n")
    install_fake_distribution(
        site, "badhook", "badhook_mod",
        "from msaug import hookimpl\n@hookimpl\ndef msaug_register_stages(register, extra):\n    pass\n",
    )
    install_fake_distribution(
        site, "raising", "raising_mod",
        "from msaug import hookimpl\n@hookimpl\ndef msaug_register_stages(register):\n    raise ValueError('bad stage')\n",
    )
    install_fake_distribution(site, "tinyplug", "tinyplug_mod", TINY_PLUGIN)
    reg = load_registries()
    reasons = {f.plugin: f.reason for f in reg.failures}
    assert "RuntimeError: boom at import" in reasons["brokenplug"]
    assert "invalid hook implementation" in reasons["badhook"] and "extra" in reasons["badhook"]
    assert "msaug_register_stages raised ValueError: bad stage" in reasons["raising"]
    assert "tiny.resize" in reg.stages and "core.lab2im" in reg.stages  # the rest still works


def test_unknown_hook_name_is_reported(site):
    install_fake_distribution(
        site, "tinyplug", "tinyplug_mod",
        "from msaug import hookimpl\n@hookimpl\ndef msaug_register_stagez(register):\n    pass\n",
    )
    reg = load_registries()
    assert any(f.plugin == "tinyplug" and "msaug_register_stagez" in f.reason for f in reg.failures)
