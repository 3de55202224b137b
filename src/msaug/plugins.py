"""Plugin manager, entry-point discovery and the typed registries the hooks fill.

Loading order: msaug's built-in plugins (:data:`DEFAULT_PLUGINS`), then every entry point
of group ``msaug`` not named in ``MSAUG_DISABLE_PLUGINS`` (a comma list of entry-point or
distribution names). A plugin that fails to import, implements an unknown hook or raises
inside a hook is recorded in :attr:`Registries.failures` (and reported by the CLI) and
skipped; the rest keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

import pluggy

from msaug import hookspecs
from msaug.errors import UnknownNameError, did_you_mean
from msaug.stage import Stage

ENTRY_POINT_GROUP = "msaug"
DISABLE_ENV = "MSAUG_DISABLE_PLUGINS"
DEFAULT_PLUGINS = (
    "msaug.builtin.stages",
    "msaug.builtin.datasets",
    "msaug.builtin.formats",
    "msaug.builtin.segmenters",
    "msaug.builtin.engine_stages",
    "msaug.builtin.diffusion_stages",
)

T = TypeVar("T")


class DuplicateNameWarning(UserWarning):
    """A plugin registered a name that another plugin already holds; the first one is kept."""


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str
    description: str = ""


@dataclass
class PluginFailure:
    plugin: str
    reason: str


class Registry(Generic[T]):
    """Names to registered objects, with the plugin that registered each."""

    kind = "entry"

    def __init__(self) -> None:
        self._entries: dict[str, Entry[T]] = {}
        self.current_plugin = "?"
        self.failures: list[PluginFailure] = []

    def _add(self, name: str, obj: T, description: str) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries:
            held = self._entries[name].plugin
            msg = f"{self.kind} {name!r} from plugin {self.current_plugin!r} clashes with the one from {held!r}; keeping {held!r}'s"
            self.failures.append(PluginFailure(self.current_plugin, msg))
            warnings.warn(msg, DuplicateNameWarning, stacklevel=3)
            return
        self._entries[name] = Entry(name, obj, self.current_plugin, description)

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self, filter: str | None = None) -> list[Entry[T]]:
        import fnmatch

        return [e for n, e in sorted(self._entries.items()) if filter is None or fnmatch.fnmatch(n, filter)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


class StageRegistry(Registry[type[Stage]]):
    kind = "stage"

    def __call__(self, cls: type[Stage], name: str | None = None) -> type[Stage]:
        if not (inspect.isclass(cls) and issubclass(cls, Stage)):
            raise TypeError(f"register() expects a msaug.Stage subclass, got {cls!r}")
        name = name or cls.name
        if name and cls.name != name:
            cls = type(cls.__name__, (cls,), {"name": name, "__module__": cls.__module__, "__doc__": cls.__doc__})
        doc = (cls.__doc__ or "").strip().splitlines()
        self._add(name, cls, cls.description or (doc[0] if doc else ""))
        return cls


class DatasetRegistry(Registry[Callable[..., Any]]):
    kind = "dataset"

    def __call__(self, name: str, factory: Callable[..., Any], description: str = "") -> None:
        if not callable(factory):
            raise TypeError(f"dataset {name!r}: factory must be callable, got {factory!r}")
        self._add(name, factory, description)


class SegmenterRegistry(Registry[Callable[..., Any]]):
    kind = "segmenter"

    def __call__(self, name: str, builder: Callable[..., Any], description: str = "") -> None:
        if not callable(builder):
            raise TypeError(f"segmenter {name!r}: builder must be callable, got {builder!r}")
        self._add(name, builder, description)


class LabelMetricRegistry:
    """Label metrics per domain (``"*"`` for all domains)."""

    def __init__(self) -> None:
        self._metrics: list[tuple[str, str, Callable[..., dict[str, float]], str]] = []
        self.current_plugin = "?"
        self.failures: list[PluginFailure] = []

    def __call__(self, domain: str, name: str, fn: Callable[..., dict[str, float]]) -> None:
        self._metrics.append((domain, name, fn, self.current_plugin))

    def for_domain(self, domain: str) -> list[tuple[str, Callable[..., dict[str, float]]]]:
        return [(n, f) for d, n, f, _ in self._metrics if d in ("*", domain)]


@dataclass
class Registries:
    """Everything the plugins registered, plus what went wrong while loading them."""

    stages: StageRegistry = field(default_factory=StageRegistry)
    datasets: DatasetRegistry = field(default_factory=DatasetRegistry)
    segmenters: SegmenterRegistry = field(default_factory=SegmenterRegistry)
    label_metrics: LabelMetricRegistry = field(default_factory=LabelMetricRegistry)
    failures: list[PluginFailure] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)


def disabled_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def create_plugin_manager(load_entry_points: bool = True) -> tuple[pluggy.PluginManager, list[PluginFailure]]:
    """Build the plugin manager: built-in plugins first, then entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []
    blocked = disabled_plugins()
    for module_name in DEFAULT_PLUGINS:
        if module_name in blocked:
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
    pm.check_pending()  # built-in plugins must always be valid
    if load_entry_points:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist is not None else "?"
            label = f"{ep.name} ({dist})" if dist not in ("?", ep.name) else ep.name
            if ep.name in blocked or dist in blocked or pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take msaug down
                failures.append(PluginFailure(label, f"failed to load: {_reason(exc)}"))
                continue
            try:
                pm.register(plugin, name=ep.name)
                pm.check_pending()
            except pluggy.PluginValidationError as exc:
                if pm.get_plugin(ep.name) is not None:
                    pm.unregister(name=ep.name)
                failures.append(PluginFailure(label, f"invalid hook implementation: {exc}"))
            except Exception as exc:
                failures.append(PluginFailure(label, f"failed to register: {_reason(exc)}"))
    return pm, failures


def _call_each(pm: pluggy.PluginManager, hook_name: str, registry: Any, failures: list[PluginFailure]) -> None:
    """Call every implementation of a hook separately, so one faulty plugin is isolated."""
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: built-ins first, so their names win clashes
        registry.current_plugin = "msaug" if impl.plugin_name in DEFAULT_PLUGINS else impl.plugin_name
        try:
            impl.function(register=registry)
        except Exception as exc:
            failures.append(PluginFailure(impl.plugin_name, f"{hook_name} raised {_reason(exc)}"))
    failures.extend(registry.failures)


def load_registries(load_entry_points: bool = True) -> Registries:
    """Load all plugins and fill fresh registries (uncached; see :func:`get_registries`)."""
    pm, failures = create_plugin_manager(load_entry_points)
    reg = Registries(failures=failures, plugins=[n for n, _ in pm.list_name_plugin()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateNameWarning)
        _call_each(pm, "msaug_register_stages", reg.stages, failures)
        _call_each(pm, "msaug_register_datasets", reg.datasets, failures)
        _call_each(pm, "msaug_register_segmenters", reg.segmenters, failures)
        _call_each(pm, "msaug_register_label_metrics", reg.label_metrics, failures)
    # hooks know a plugin by its entry-point name; users know the distribution they installed
    labels = {ep.name: f"{ep.name} ({ep.dist.name})" for ep in _entry_points() if ep.dist is not None and ep.dist.name != ep.name}
    for failure in failures:
        failure.plugin = labels.get(failure.plugin, failure.plugin)
    return reg


@lru_cache(maxsize=1)
def get_registries() -> Registries:
    """The process-wide registries (plugins are loaded once)."""
    return load_registries()


def reset_registries() -> None:
    """Forget the cached registries (after installing a plugin, in tests)."""
    get_registries.cache_clear()
