"""``msaug plugin new NAME``: scaffold a third-party plugin package from msaug's template.

The template (``msaug/templates/plugin``) is a complete, working plugin: a pyproject with
the ``msaug`` entry point, a stage skeleton that passes the stage contract, a dataset hook
example, tests that subclass :class:`msaug.testing.StageContract`, a pipeline and a
README. ``{{name}}``, ``{{package}}``, ``{{dist}}`` and ``{{msaug_version}}`` are replaced
in file contents and paths; ``.tmpl`` suffixes are dropped (they keep the template's
Python files out of msaug's own package, linters and test collection).
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from msaug import __version__
from msaug.errors import ConfigError, DataError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TEMPLATE_SUFFIX = ".tmpl"


def template_root() -> Traversable:
    return resources.files("msaug") / "templates" / "plugin"


#: names msaug itself uses: its package and the prefixes of its own stages
RESERVED_NAMES = frozenset({"msaug", "core", "gan"})


def check_name(name: str) -> None:
    """A plugin name becomes the stage prefix (``NAME.stage``) and part of a Python package name."""
    if keyword.iskeyword(name):
        raise ConfigError(f"plugin name {name!r} is a Python keyword, which cannot name the plugin's module; choose another, e.g. {name + '_maps'!r}")
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"plugin name {name!r}: use a lower-case Python identifier of up to 40 characters "
            "(letters, digits, '_', starting with a letter), e.g. 'dermoscopy'; it prefixes the stage names"
        )
    clash = name_clash(name)
    if clash is not None:
        raise ConfigError(f"plugin name {name!r} is taken by {clash}; its stages would clash with those (NAME.stage); choose another, e.g. {name + '_lab'!r}")


def name_clash(name: str) -> str | None:
    """What already uses ``name`` as a plugin, stage/dataset prefix or ``msaug_NAME`` package, or None."""
    import importlib.util
    from importlib.metadata import entry_points

    if name in RESERVED_NAMES:
        return "msaug itself" if name == "msaug" else f"msaug's own stages ({name}.*)"
    for ep in entry_points(group="msaug"):
        if ep.name == name:
            dist = getattr(ep, "dist", None)
            return f"the installed plugin {name!r}" + (f" ({dist.name})" if dist is not None else "")
    from msaug.plugins import get_registries

    registries = get_registries()
    for registry in (registries.stages, registries.datasets):
        taken = [n for n in registry.names() if n.split(".")[0] == name and "." in n]
        if taken:
            return f"the {registry.kind}s {', '.join(taken[:3])} of plugin {registry.entry(taken[0]).plugin!r}"
    if importlib.util.find_spec(f"msaug_{name}") is not None:
        return f"the installed Python package msaug_{name}"
    return None


def _files(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.name == "__pycache__":
            continue
        path = f"{prefix}{item.name}"
        found += _files(item, f"{path}/") if item.is_dir() else [(path, item)]
    return found


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def scaffold(name: str, target: Path) -> list[Path]:
    """Write a new plugin package for domain ``name`` into ``target``; returns the files written."""
    check_name(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target}: already exists and is not an empty folder; choose another --dir or remove it")
    values = {"name": name, "package": f"msaug_{name}", "dist": f"msaug-{name.replace('_', '-')}", "msaug_version": __version__}
    written = []
    for relative, source in _files(template_root()):
        out = target / render(relative.removesuffix(TEMPLATE_SUFFIX), values)
        text = render(source.read_text(encoding="utf-8"), values)
        if "{{" in text:  # a placeholder the template uses but scaffold() does not fill: a bug in msaug
            raise RuntimeError(f"template {relative}: unfilled placeholder near {text[text.index('{{'):][:40]!r}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        written.append(out)
    return written


@click.group("plugin")
def plugin() -> None:
    """Write your own stages and datasets as plugins."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None, help="Folder to create (default: ./NAME).")
def new(name: str, directory: Path | None) -> None:
    """Scaffold a plugin package for domain NAME: entry point, a working stage, a dataset, contract tests."""
    target = directory or Path(name)
    files = scaffold(name, target)
    click.echo(f"created {target}/ ({len(files)} files): stage {name}.class_colour, dataset {name}.shapes")
    click.echo("next:")
    click.echo(f"  pip install -e {target}")
    click.echo(f"  msaug stages list --filter '{name}.*'")
    click.echo(f"  python -m pytest {target}/tests")
