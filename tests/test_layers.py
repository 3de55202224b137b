"""msaug's import layers, checked over the import graph of its source (no import-linter needed).

Every ``import`` of every module under ``src/msaug`` counts, those inside functions too; an
import under ``if TYPE_CHECKING:`` counts for the layers (a type is a dependency too) but not
for cycles, since it never runs. The rules, as ``docs/architecture.md`` states them:

* a module imports only modules of its own layer or of a layer below (``LAYERS``, lowest
  first: core types <- engine <- segment <- pipeline <- bench <- cli);
* no import cycle at runtime, neither between modules nor between the units they form
  (each subpackage of msaug, each top-level module);
* the plugins' and the example's code imports only msaug's public API (``PUBLIC_MODULES`` and
  the names in ``msaug.__all__``);
* only the cli layer imports rich (``CLI_ONLY``): the layers below report through
  ``msaug.progress.Reporter``, and the commands hand down ``msaug.console.RichReporter``.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: The layers, lowest first. ``pkg.*`` is a package and every module in it; a plain name is
#: that module only; the most specific entry wins. A module missing here fails the test.
LAYERS: dict[str, tuple[str, ...]] = {
    # the contracts and the services everything uses; no training code
    "core": (
        "msaug.errors", "msaug.progress", "msaug.rng", "msaug.label_encoding", "msaug.resize", "msaug.label_values", "msaug.io",
        "msaug.modality", "msaug.sample", "msaug.stage", "msaug.augment", "msaug.data", "msaug.synthetic",
        "msaug.hookspecs", "msaug.plugins", "msaug.batch", "msaug.checks",
    ),
    # networks, trainer and checkpoints; the built-in stages and datasets; the plugin authors' test kit
    "engine": ("msaug.nn.*", "msaug.train.*", "msaug.builtin.*", "msaug.testing.*", "msaug.nnunet"),
    # segmenters, protocols, metrics, QC, export (and msaug.monai, which reads its MONAI datalists), the per-stage measurement
    "segment": ("msaug.segment.*", "msaug.builtin.segmenters", "msaug.monai"),
    # YAML, composer, data check, the run and its phases; msaug data verify (it reads pipelines and run folders)
    "pipeline": ("msaug.pipeline.*", "msaug.verify"),
    "bench": ("msaug.bench.*",),
    # the commands; msaug.api, the same entry points for Python users; the package root ``msaug``,
    # the public facade that re-exports from every layer (so no module inside msaug imports it)
    # (msaug.console: the rich consoles and the RichReporter the commands hand down)
    "cli": ("msaug.cli", "msaug.cli_segment", "msaug.cli_plugin", "msaug.__main__", "msaug.api", "msaug", "msaug.console"),
}

#: Libraries only the cli layer may import: what the user sees is decided there.
CLI_ONLY = ("rich",)

#: Upward imports that exist today and are not allowed in new code; each says how it goes away.
#: The test fails when one of them is gone (delete its line then).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}

#: What plugins and examples may import from msaug besides the names in ``msaug.__all__``:
#: the modules ``docs/writing-plugins.md`` documents as public (and their submodules).
PUBLIC_MODULES = ("msaug.testing", "msaug.train.stages", "msaug.train.diffusion", "msaug.resize")

#: Imports of msaug's private modules by plugins that exist today, each with what replaces it;
#: the test fails when one of them is gone (delete its line then).
KNOWN_PRIVATE: dict[tuple[str, str], str] = {}

#: Code that may use msaug's public API only: the plugins, the example, the plugin template.
PLUGIN_CODE = (
    *sorted((ROOT / "plugins").glob("*/src")),
    *sorted((ROOT / "examples").glob("*/src")),
    SRC / "msaug" / "templates",
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (``from pkg import submodule`` names the submodule)
    names: tuple[str, ...]  # the names of a ``from ... import``; () for ``import x``
    line: int
    runtime: bool  # False under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}" + ("" if self.runtime else " (type checking only)")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def parse_imports(source: str, module: str, is_package: bool = False, modules: Iterable[str] = ()) -> list[Import]:
    """Every import in ``source``, the code of ``module``, at any depth; ``modules``: known module names."""
    known = set(modules)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(module, a.name, (), node.lineno, runtime) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = tuple(a.name for a in node.names)
            submodules = [n for n in names if f"{target}.{n}" in known]
            found.extend(Import(module, f"{target}.{n}", (), node.lineno, runtime) for n in submodules)
            rest = tuple(n for n in names if n not in submodules)
            if rest or not submodules:
                found.append(Import(module, target, rest, node.lineno, runtime))
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(ast.parse(source), True)
    return found


@functools.cache
def msaug_modules() -> dict[str, Path]:
    return {module_name(p, SRC): p for p in sorted((SRC / "msaug").rglob("*.py"))}


@functools.cache
def msaug_imports() -> tuple[Import, ...]:
    """Every import of an msaug module by an msaug module, with the packages each one runs.

    ``import msaug.a.b`` also runs ``msaug/a/__init__.py``: an import names the packages above
    its target too, except those the importing module is already inside.
    """
    modules = msaug_modules()
    edges = []
    for name, path in modules.items():
        for imp in parse_imports(path.read_text(), name, path.name == "__init__.py", modules):
            if imp.target != "msaug" and not imp.target.startswith("msaug."):
                continue
            edges.append(imp)
            parts = imp.target.split(".")
            for n in range(1, len(parts)):
                parent = ".".join(parts[:n])
                if not (name == parent or name.startswith(parent + ".")):
                    edges.append(Import(name, parent, (), imp.line, imp.runtime))
    return tuple(edges)


def layer_of(module: str) -> str | None:
    """The layer of ``module`` by ``LAYERS`` (the most specific entry), ``None`` where none names it."""
    best: tuple[int, str] | None = None
    for layer, entries in LAYERS.items():
        for entry in entries:
            if entry.endswith(".*"):
                prefix = entry[:-2]
                hit = module == prefix or module.startswith(prefix + ".")
                weight = len(prefix)
            else:
                hit, weight = module == entry, len(entry) + 1  # a plain name beats the package around it
            if hit and (best is None or weight > best[0]):
                best = (weight, layer)
    return best[1] if best else None


@functools.cache
def all_imports() -> tuple[Import, ...]:
    """Every import of every msaug module, of any library (``msaug_imports`` keeps msaug's own)."""
    modules = msaug_modules()
    return tuple(imp for name, path in modules.items() for imp in parse_imports(path.read_text(), name, path.name == "__init__.py", modules))


def cli_only_imports(imports: Iterable[Import]) -> list[str]:
    """The imports of a ``CLI_ONLY`` library by a module below the cli layer."""
    return [
        f"{imp}: only the cli layer imports {imp.target.split('.')[0]} (layer {layer_of(imp.source)!r} reports through msaug.progress)"
        for imp in imports
        if imp.target.split(".")[0] in CLI_ONLY and layer_of(imp.source) != "cli"
    ]


def upward_imports(edges: Iterable[Import]) -> list[str]:
    ranks = {layer: n for n, layer in enumerate(LAYERS)}
    found = []
    for e in edges:
        low, high = layer_of(e.target), layer_of(e.source)
        if low is not None and high is not None and ranks[low] > ranks[high]:
            found.append(f"{e}: layer {high!r} imports layer {low!r}")
    return found


def unit_of(module: str) -> str:
    """The unit a module belongs to for package cycles: its subpackage of msaug, or itself."""
    parts = module.split(".")
    if len(parts) <= 2:
        return module
    return ".".join(parts[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node, and self-loops (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def runtime_cycles(edges: Iterable[Import]) -> list[str]:
    """Module cycles and unit (package) cycles among the imports that run, ``KNOWN_UPWARD`` left out."""
    modules: dict[str, set[str]] = {}
    units: dict[str, set[str]] = {}
    for e in edges:
        if not e.runtime or (e.source, e.target) in KNOWN_UPWARD:
            continue
        if e.source != e.target:
            modules.setdefault(e.source, set()).add(e.target)
        a, b = unit_of(e.source), unit_of(e.target)
        if a != b:
            units.setdefault(a, set()).add(b)
    return [f"modules: {' <-> '.join(c)}" for c in cycles(modules)] + [f"packages: {' <-> '.join(c)}" for c in cycles(units)]


def public_names() -> set[str]:
    tree = ast.parse((SRC / "msaug" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("src/msaug/__init__.py has no __all__ list")


def private_uses(imports: Iterable[Import], public: set[str]) -> list[str]:
    """The imports of msaug that are not its public API."""
    found = []
    for imp in imports:
        if imp.target == "msaug":
            private = [n for n in imp.names if n not in public]
            if private:
                found.append(f"{imp}: {', '.join(private)} not in msaug.__all__")
        elif imp.target.startswith("msaug.") and not any(imp.target == m or imp.target.startswith(m + ".") for m in PUBLIC_MODULES):
            found.append(f"{imp}: not a public module ({', '.join(PUBLIC_MODULES)}, or msaug itself)")
    return found


@functools.cache
def plugin_imports() -> tuple[Import, ...]:
    """Every import in the plugins', the example's and the plugin template's code (``{{name}}`` filled in)."""
    found: list[Import] = []
    for root in PLUGIN_CODE:
        for path in sorted([*root.rglob("*.py"), *root.rglob("*.py.tmpl")]):
            code = re.sub(r"\{\{\s*\w+\s*\}\}", "placeholder", path.read_text())
            plain = path.with_name(path.name.removesuffix(".tmpl"))
            found += parse_imports(code, module_name(plain, root), plain.name == "__init__.py")
    return tuple(found)


# ---- the rules, on the code as it is --------------------------------------------------------


def test_every_module_has_a_layer():
    missing = [m for m in msaug_modules() if layer_of(m) is None]
    assert missing == [], f"add these modules to LAYERS in tests/test_layers.py: {missing}"


def test_no_module_imports_a_layer_above_its_own():
    found = upward_imports(e for e in msaug_imports() if (e.source, e.target) not in KNOWN_UPWARD)
    assert found == [], "\n".join(found)


def test_only_the_cli_layer_imports_rich():
    found = cli_only_imports(all_imports())
    assert found == [], "\n".join(found)
    assert any(i.target.startswith("rich") for i in all_imports() if i.source == "msaug.console"), "the checker no longer sees msaug.console's rich import"


def test_known_upward_imports_still_exist():
    edges = {(e.source, e.target) for e in msaug_imports()}
    gone = [f"{s} -> {t}" for s, t in KNOWN_UPWARD if (s, t) not in edges]
    assert gone == [], f"delete these entries from KNOWN_UPWARD, they are fixed: {gone}"


def test_no_import_cycles_at_runtime():
    found = runtime_cycles(msaug_imports())
    assert found == [], "\n".join(found)


def test_plugins_and_examples_import_only_the_public_api():
    found = private_uses((i for i in plugin_imports() if (i.source, i.target) not in KNOWN_PRIVATE), public_names())
    assert found == [], "\n".join(found)


def test_known_private_imports_still_exist():
    imports = {(i.source, i.target) for i in plugin_imports()}
    gone = [f"{s} -> {t}" for s, t in KNOWN_PRIVATE if (s, t) not in imports]
    assert gone == [], f"delete these entries from KNOWN_PRIVATE, they are fixed: {gone}"


def test_the_public_modules_exist():
    modules = msaug_modules()
    assert [m for m in PUBLIC_MODULES if m not in modules] == []


# ---- the checker catches what it must -------------------------------------------------------


def test_an_upward_import_inside_a_function_is_reported():
    code = "def load():\n    from msaug.pipeline.runner import prepare\n    return prepare\n"
    edges = parse_imports(code, "msaug.sample", modules=msaug_modules())
    assert upward_imports(edges) == ["msaug.sample:2 imports msaug.pipeline.runner: layer 'core' imports layer 'pipeline'"]


@pytest.mark.parametrize(
    ("code", "module"),
    [
        ("from rich.console import Console\n", "msaug.pipeline.runner"),
        ("def fit():\n    from rich.progress import Progress\n", "msaug.train.trainer"),
        ("import rich\n", "msaug.stage"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rich.table import Table\n", "msaug.bench.compare"),
        ("from rich.table import Table\n", "msaug.segment.train"),
        ("from rich.markup import escape\n", "msaug.nn.layers"),
    ],
)
def test_a_rich_import_below_the_cli_is_reported(code, module):
    found = cli_only_imports(parse_imports(code, module, modules=msaug_modules()))
    assert len(found) == 1 and found[0].startswith(f"{module}:") and "only the cli layer imports rich" in found[0], found
    assert cli_only_imports(parse_imports(code, "msaug.cli", modules=msaug_modules())) == []


def test_a_submodule_imported_from_its_package_is_the_submodule():
    edges = parse_imports("from msaug.pipeline import runner\n", "msaug.segment.qc", modules=msaug_modules())
    assert [e.target for e in edges] == ["msaug.pipeline.runner"]
    assert upward_imports(edges) == ["msaug.segment.qc:1 imports msaug.pipeline.runner: layer 'segment' imports layer 'pipeline'"]


def test_a_relative_upward_import_is_reported():
    edges = parse_imports("from ..pipeline.schema import EvaluateConfig\n", "msaug.segment.evaluate", modules=msaug_modules())
    assert [e.target for e in edges] == ["msaug.pipeline.schema"]
    assert len(upward_imports(edges)) == 1


def test_a_type_checking_import_counts_for_layers_but_not_cycles():
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from msaug.pipeline.composer import Chain\n"
    edges = parse_imports(code, "msaug.segment.stage_probe", modules=msaug_modules())
    assert [(e.target, e.runtime) for e in edges if e.target.startswith("msaug")] == [("msaug.pipeline.composer", False)]
    assert upward_imports(edges) == [
        "msaug.segment.stage_probe:3 imports msaug.pipeline.composer (type checking only): layer 'segment' imports layer 'pipeline'"
    ]
    assert runtime_cycles([*msaug_imports(), *edges]) == []


def test_a_package_cycle_is_reported():
    back = parse_imports("def f():\n    import msaug.pipeline.schema\n", "msaug.segment.evaluate", modules=msaug_modules())
    found = runtime_cycles([*msaug_imports(), *back])
    assert any(c.startswith("packages:") and "msaug.pipeline" in c.split() and "msaug.segment" in c.split() for c in found), found


def test_a_module_cycle_is_reported():
    edges = [*parse_imports("import msaug.b\n", "msaug.a"), *parse_imports("from msaug import a\n", "msaug.b", modules={"msaug.a"})]
    assert runtime_cycles(edges) == ["modules: msaug.a <-> msaug.b", "packages: msaug.a <-> msaug.b"]


@pytest.mark.parametrize(
    ("code", "private"),
    [
        ("from msaug import Stage, hookimpl\n", []),
        ("from msaug.train.stages import Translator\nimport msaug.testing.contract\n", []),
        ("from msaug.io import read_label_array\n", ["msaug.io"]),
        ("from msaug import Stage, SyntheticWriter\n", ["SyntheticWriter"]),
        ("import msaug_xray.anatomy\nfrom msaug_fundus import spec\n", []),
    ],
)
def test_a_private_import_by_a_plugin_is_reported(code, private):
    found = private_uses(parse_imports(code, "plugin"), public_names())
    assert len(found) == len(private) and all(p in f for p, f in zip(private, found)), found
