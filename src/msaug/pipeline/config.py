"""Loading a pipeline YAML: safe parsing, key-path line numbers, profiles and ``--set``.

Errors name the file, the line, the dotted key path and what would be valid, e.g.::

    pipelines/xray.yaml:14: stages[1].params.stepz: unknown key. Valid keys: in_size, lr, ...
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from msaug.data import expand_root
from msaug.errors import ConfigError
from msaug.pipeline.schema import PipelineConfig

Path_ = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_map(node: yaml.Node, path: Path_ = (), lines: dict[Path_, int] | None = None) -> dict[Path_, int]:
    """Map every key path of a composed YAML document to its 1-based line number."""
    lines = {} if lines is None else lines
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _line_map(item, path + (i,), lines)
    return lines


@dataclass
class LoadedYAML:
    path: Path
    data: dict[str, Any]
    lines: dict[Path_, int] = field(default_factory=dict)
    #: key path -> where an override came from ("--set data.size=64", "profile 'quick'")
    origins: dict[Path_, str] = field(default_factory=dict)
    #: key path -> line of the profile entry that set it
    origin_lines: dict[Path_, int] = field(default_factory=dict)

    def where(self, path: Sequence[str | int]) -> str:
        """``file:line: key.path`` for error messages (the nearest known line; for overrides, the profile's line)."""
        path = tuple(path)
        for n in range(len(path), 0, -1):
            if path[:n] in self.origins:
                line = self.origin_lines.get(path[:n])
                return f"{self.path}{f':{line}' if line else ''}: {format_path(path)} (set by {self.origins[path[:n]]})"
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return f"{self.path}:{self.lines[path[:n]]}: {format_path(path)}"
        return f"{self.path}: {format_path(path)}"


def read_yaml(path: str | Path) -> LoadedYAML:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read pipeline file ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a pipeline file must be a mapping with name, data and stages; got {type(data).__name__}")
    return LoadedYAML(path, data, _line_map(node) if node is not None else {})


def check_key(key: str, shown: str) -> None:
    """A dotted override key must name a path (``data.size``, ``stages.image.params.lr``); ``shown`` is how the message names it."""
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{shown}: the key must be a dotted path like data.size or stages.image.params.lr")


def parse_set(expr: str) -> tuple[str, Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, booleans, lists, ``null``)."""
    if "=" not in expr:
        raise ConfigError(f"--set {expr!r}: expected KEY=VALUE, e.g. --set data.size=128")
    key, _, raw = expr.partition("=")
    key = key.strip()
    check_key(key, f"--set {expr!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def set_argument(key: str, value: Any) -> str:
    """The ``--set`` argument :func:`parse_set` reads back as ``(key, value)``: the value written as one line of YAML.

    How overrides built in Python (a mapping of dotted keys to values) reach a child
    ``msaug pipeline run``; ``None`` is written ``null``, a path as its text.
    """
    check_key(key, f"override {key!r}")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    except yaml.representer.RepresenterError:
        raise ConfigError(f"override {key}: {value!r} is not a YAML value (use numbers, strings, booleans, lists, mappings or None)") from None
    text = text.removesuffix("\n").removesuffix("\n...").strip()
    return f"{key}={text}"


def _stage_index(stages: list[Any], part: str, dotted: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(stages) <= index < len(stages):
            raise ConfigError(f"{dotted}: stage index {index} is out of range; the pipeline has {len(stages)} stages")
        return index % len(stages)
    names = []
    for i, st in enumerate(stages):
        if isinstance(st, Mapping):
            short = st.get("name") or str(st.get("use", "")).split(".")[-1]
            names.append(short)
            if short == part:
                return i
    raise ConfigError(f"{dotted}: no stage named {part!r}; stages are: {', '.join(names) or '(none)'} (or use an index)")


def resolve_path(data: dict[str, Any], dotted: str) -> Path_:
    """Turn ``stages.image.params.lr`` into ``("stages", 2, "params", "lr")``."""
    parts = dotted.split(".")
    path: list[str | int] = []
    node: Any = data
    for i, part in enumerate(parts):
        if isinstance(node, list):
            index = _stage_index(node, part, dotted) if path == ["stages"] else _list_index(node, part, dotted)
            path.append(index)
            node = node[index]
        else:
            path.append(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return tuple(path)


def _list_index(items: list[Any], part: str, dotted: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(items) <= int(part) < len(items):
        raise ConfigError(f"{dotted}: {part!r} is not a valid index for a list of {len(items)} items")
    return int(part) % len(items)


def set_path(data: dict[str, Any], path: Path_, value: Any, dotted: str) -> None:
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            node = node[part]
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"{dotted}: {format_path(path[: i + 1])} is a {type(child).__name__}, not a mapping")
        node = child
    last = path[-1]
    if isinstance(node, list):
        node[last] = value  # type: ignore[index]
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{dotted}: cannot set a key inside a {type(node).__name__}")


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested override maps to dotted keys (``{data: {size: 64}}`` -> ``{"data.size": 64}``)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def leaf_paths(value: Any, path: Path_ = ()) -> dict[Path_, Any]:
    """Every leaf of nested mappings *and lists* by key path (``("stages", 2, "params", "lr")``).

    Unlike :func:`flatten` (which keeps lists whole, as override values), this descends into
    lists, so a diff of two pipelines can name ``stages[2].params.lr`` instead of both lists.
    """
    if isinstance(value, Mapping) and value:
        out: dict[Path_, Any] = {}
        for key, item in value.items():
            out.update(leaf_paths(item, path + (str(key),)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(leaf_paths(item, path + (i,)))
        return out
    return {path: value}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key path, old value, new value)`` for every leaf that differs, in key-path order."""
    a, b = leaf_paths(old), leaf_paths(new)
    absent = "(absent)"
    keys = sorted(set(a) | set(b), key=lambda p: tuple((0, x) if isinstance(x, int) else (1, x) for x in p))
    return [(format_path(k), a.get(k, absent), b.get(k, absent)) for k in keys if k not in a or k not in b or a[k] != b[k]]


def apply_overrides(loaded: LoadedYAML, overrides: Mapping[str, Any], origin: str, lines: Mapping[str, int] | None = None) -> None:
    """Set each dotted key; ``lines`` (dotted key -> line of a profile entry) puts that line into later messages."""
    for dotted, value in overrides.items():
        line = (lines or {}).get(dotted)
        try:
            path = resolve_path(loaded.data, dotted)
            set_path(loaded.data, path, copy.deepcopy(value), f"{origin}: {dotted}")
        except ConfigError as exc:
            if line is None:
                raise
            message = str(exc) if str(exc).startswith(origin) else f"{origin}: {exc}"
            raise ConfigError(f"{loaded.path}:{line}: {message}") from None
        if origin.startswith("profile"):
            loaded.origins[path] = origin
        elif origin == OVERRIDES:
            loaded.origins[path] = f"overrides {{{dotted!r}: {value!r}}}"
        else:
            loaded.origins[path] = f"--set {dotted}={value!r}"
        if line is not None:
            loaded.origin_lines[path] = line


#: the origin of overrides given in Python (``load_pipeline(..., overrides=)``), as messages name it
OVERRIDES = "overrides"


def apply_sets(loaded: LoadedYAML, overrides: Mapping[str, Any], source: str = "--set") -> None:
    """Apply overrides: dotted key paths to values, from the command line (:func:`parse_sets`, ``source`` ``--set``) or built in Python (:data:`OVERRIDES`).

    A key that names no stage or list item is a :class:`ConfigError` here; an unknown key or a
    value of the wrong type is one when the pipeline is validated, naming where it came from:
    ``(set by --set KEY=VALUE)`` or ``(set by overrides {'KEY': VALUE})``.
    """
    for key in overrides:
        check_key(key, f"{source} {key!r}")
    apply_overrides(loaded, overrides, source)


def profile_lines(loaded: LoadedYAML, name: str) -> dict[str, int]:
    """Line of each entry of profile ``name``, by its flattened dotted key (as :func:`flatten` spells it)."""
    found: dict[str, int] = {}

    def walk(mapping: Mapping[str, Any], path: Path_, prefix: str) -> None:
        for key, value in mapping.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping) and value:
                walk(value, path + (key,), dotted)
            elif path + (key,) in loaded.lines:
                found[dotted] = loaded.lines[path + (key,)]

    profile = (loaded.data.get("profiles") or {}).get(name)
    if isinstance(profile, Mapping):
        walk(profile, ("profiles", name), "")
    return found


def default_profile(available: Sequence[str]) -> str | None:
    """``full`` where CUDA is available, else ``quick``; ``None`` if the pipeline lacks it."""
    import torch

    wanted = "full" if torch.cuda.is_available() else "quick"
    return wanted if wanted in available else None


def validation_message(loaded: LoadedYAML, exc: ValidationError, prefix: Path_ = (), model: type[BaseModel] | None = None) -> str:
    """One readable message per pydantic error, each naming file, line and key path."""
    messages = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(model, tuple(err["loc"])[:-1]) if model else []
            hint = f" Valid keys: {', '.join(valid)}." if valid else ""
            messages.append(f"{loaded.where(loc)}: unknown key.{hint}")
        elif err["type"] == "missing":
            messages.append(f"{loaded.where(loc)}: required key is missing")
        else:
            given = err.get("input")
            shown = f" (got {given!r})" if not isinstance(given, (dict, list)) else ""
            messages.append(f"{loaded.where(loc)}: {err['msg']}{shown}")
    return "\n".join(messages)


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (sub)model at ``loc``, for "unknown key" hints."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field_info = getattr(current, "model_fields", {}).get(part)
        if field_info is None:
            return []
        annotation = field_info.annotation
        current = _model_in(annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


@dataclass
class ResolvedConfig:
    config: PipelineConfig
    loaded: LoadedYAML
    profile: str | None
    sets: list[str]


def load_pipeline(path: str | Path, profile: str | None = None, sets: Sequence[str] = (),
                  overrides: Mapping[str, Any] | None = None) -> ResolvedConfig:
    """Read, apply the profile and the overrides, and validate a pipeline YAML.

    ``profile=None`` picks the default (``quick`` on CPU, ``full`` with CUDA, when defined);
    ``profile="none"`` applies no profile. ``sets`` are ``--set KEY=VALUE`` strings;
    ``overrides`` maps dotted keys to values (``{"stages.image.budget.steps": None}``) and
    is applied after them, by the same path (:func:`apply_sets`). The result's ``sets``
    lists both, as ``--set`` arguments (:func:`set_argument`).
    """
    loaded = read_yaml(path)
    profiles = loaded.data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{loaded.where(('profiles',))}: must be a mapping of profile names to overrides")
    chosen: str | None
    if profile is None:
        chosen = default_profile(list(profiles))
    elif profile == "none":
        chosen = None
    elif profile not in profiles:
        valid = ", ".join(sorted(profiles)) or "(this pipeline defines none)"
        raise ConfigError(f"{loaded.path}: profile {profile!r} is not defined. Valid profiles: {valid}")
    else:
        chosen = profile
    if chosen is not None:
        entries = profiles[chosen]
        if not isinstance(entries, dict):
            raise ConfigError(f"{loaded.where(('profiles', chosen))}: a profile must be a mapping of key paths to values")
        apply_overrides(loaded, flatten(entries), f"profile {chosen!r}", profile_lines(loaded, chosen))
    parsed = [parse_set(s) for s in sets]
    for key, value in parsed:  # one by one, in the order given: a later --set may refer to a stage an earlier one renamed
        apply_sets(loaded, {key: value})
    if overrides:
        apply_sets(loaded, overrides, OVERRIDES)
        sets = [*sets, *(set_argument(k, v) for k, v in overrides.items())]
    base = loaded.path.parent
    data = loaded.data.get("data")
    if isinstance(data, dict) and data.get("root") is not None:
        try:
            root = expand_root(str(data["root"]))
        except ConfigError as exc:
            raise ConfigError(f"{loaded.where(('data', 'root'))}: {exc}") from None
        from_cli = loaded.origins.get(("data", "root"), "").startswith(("--set", OVERRIDES))  # relative to the shell's folder
        data["root"] = str((root if root.is_absolute() or from_cli else base / root).resolve())
    evaluate = loaded.data.get("evaluate")
    segmenter = evaluate.get("segmenter") if isinstance(evaluate, dict) else None
    for block, key, where in ((segmenter, "weights", ("evaluate", "segmenter", "weights")), (evaluate, "inception_weights", ("evaluate", "inception_weights"))):
        if isinstance(block, dict) and isinstance(block.get(key), str) and block[key].strip():
            weights = Path(block[key]).expanduser()  # like data.root: the YAML's folder, or the shell's for --set
            from_cli = loaded.origins.get(where, "").startswith(("--set", OVERRIDES))
            block[key] = str((weights if weights.is_absolute() or from_cli else base / weights).resolve())
    try:
        config = PipelineConfig.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError(validation_message(loaded, exc, model=PipelineConfig)) from None
    return ResolvedConfig(config, loaded, chosen, list(sets))
