"""Run folders: the layout of a run's folder, and the only folders ``msaug pipeline run`` writes into, resumes or clears.

:class:`RunFolder` is the one place that knows where a run keeps what (the runner, ``msaug
generate``, ``msaug data verify`` and ``msaug compare`` ask it)::

    OUT/.msaug-run               marker: msaug created this folder
    OUT/pipeline.resolved.yaml   every default and override made explicit
    OUT/split.json               the train/test case split
    OUT/stages/01-<name>/        stage.safetensors, stage.json, metrics.jsonl, losses.png, checkpoint/, samples/
    OUT/synthetic/               images/, labels/, manifest.jsonl, dataset.json
    OUT/evaluation/              one folder per protocol (its segmenter and result)
    OUT/report.json, report.md, grid.png

msaug writes a marker, ``.msaug-run`` (JSON: format, created_by, pipeline, created), into a
run folder when it creates (or adopts an empty) folder, before anything else. ``--resume``
and ``--overwrite`` require the marker, so a dataset or any other folder of the user is never
written into or cleared; ``--overwrite`` deletes only the names a run writes (:data:`OWNED`)
and keeps everything else. Run folders of versions before the marker are recognised by the
first line msaug writes into ``pipeline.resolved.yaml`` and get the marker on their first
``--resume`` or ``--overwrite``.

Under ``--resume`` only the keys that decide what the stages learn (:data:`STAGE_KEYS`) must
be unchanged; the generate and evaluate blocks may change: finished stages are kept and the
pairs are regenerated only where the change alters them.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from msaug.errors import ConfigError, DataError
from msaug.io import atomic_write, read_json, remove_stale_temp_files, sha256_file, write_json
from msaug.pipeline.config import differences
from msaug.pipeline.records import RunReport, read_run_report
from msaug.synthetic import MANIFEST, SyntheticWriter, pair_name, read_manifest

MARKER = ".msaug-run"
MARKER_FORMAT = 1
RESOLVED = "pipeline.resolved.yaml"
SPLIT = "split.json"
STAGES = "stages"
SYNTHETIC = "synthetic"
EVALUATION = "evaluation"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
GRID = "grid.png"
#: the top-level names a run writes; ``--overwrite`` deletes these and nothing else
OWNED = (RESOLVED, SPLIT, STAGES, SYNTHETIC, EVALUATION, REPORT_JSON, REPORT_MD, GRID)
#: what a run writes before any work: a folder holding only these loses nothing when started afresh
BOOKKEEPING = frozenset({MARKER, RESOLVED, SPLIT})
#: top-level keys that decide what the stages learn; ``--resume`` refuses a change to any of them
STAGE_KEYS = ("data", "stages", "seed")
#: generate keys that change every pair's files: a change under ``--resume`` regenerates the pairs
PAIR_KEYS = ("generate.seed", "generate.batch_size", "generate.bit_depth")
#: the first line of every ``pipeline.resolved.yaml`` msaug writes (recognises old run folders)
RESOLVED_HEADER = "# Resolved from "
RESOLVED_BY = "by msaug pipeline run"

Kind = Literal["marked", "legacy"]


def stage_folder_name(index: int, name: str) -> str:
    """``NN-name``, the folder under ``stages/`` of the stage at ``index`` (from 0); also its key in a manifest line's ``stages``."""
    return f"{index + 1:02d}-{name}"


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder, ``OUT/stages/NN-name/``.

    The stage counts as finished only when ``stage.json`` (written after ``stage.safetensors``,
    holding its sha256) says ``complete``.
    """

    path: Path

    @property
    def weights(self) -> Path:
        return self.path / "stage.safetensors"

    @property
    def info_file(self) -> Path:
        return self.path / "stage.json"

    @property
    def metrics(self) -> Path:
        """The trainer's ``metrics.jsonl`` (one line per logged step)."""
        return self.path / "metrics.jsonl"

    @property
    def losses(self) -> Path:
        """``losses.png``, the loss curves the report draws."""
        return self.path / "losses.png"

    @property
    def has_checkpoint(self) -> bool:
        """Whether the trainer left a training checkpoint here (a rebuilt stage resumes from it)."""
        return (self.path / "checkpoint" / "state.json").is_file()

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.path.parent.parent)

    def read_info(self) -> dict[str, Any]:
        """``stage.json``; a missing or unreadable file is a :class:`~msaug.errors.DataError`."""
        return read_json(self.info_file)

    def complete(self) -> bool:
        """Whether ``stage.json`` says the stage finished (a missing or unreadable one: it did not)."""
        if not self.info_file.is_file():
            return False
        try:
            return bool(self.read_info().get("complete"))
        except DataError:
            return False

    def weights_problem(self, info: dict[str, Any]) -> str | None:
        """What is wrong with a finished stage's ``stage.safetensors`` (``None``: it matches ``info``, its ``stage.json``)."""
        if not self.weights.is_file():
            return "missing, though stage.json says the stage finished"
        if sha256_file(self.weights) != info.get("sha256"):
            return "sha256 does not match stage.json; the file was changed or damaged"
        return None


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run (``--out`` of ``msaug pipeline run``): where each of its files lies, and its status.

    Building one touches nothing on disk; :meth:`claim` creates, adopts, resumes or clears the
    folder before a run, and only a folder msaug created (:meth:`kind`) is ever written into.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def resolved(self) -> Path:
        """``pipeline.resolved.yaml``: the pipeline with every default and override made explicit."""
        return self.root / RESOLVED

    @property
    def split(self) -> Path:
        """``split.json``: the train/test case split."""
        return self.root / SPLIT

    @property
    def stages(self) -> Path:
        return self.root / STAGES

    def stage(self, folder: str) -> StageFolder:
        """The folder of one stage, by its name under ``stages/`` (:func:`stage_folder_name`, ``ComposedStage.folder``)."""
        return StageFolder(self.stages / folder)

    def stage_folders(self) -> list[StageFolder]:
        """The stage folders that hold a ``stage.json``, in their order."""
        return [StageFolder(info.parent) for info in sorted(self.stages.glob("*/stage.json"))]

    @property
    def synthetic(self) -> Path:
        """``synthetic/``: the generated pairs (images/, labels/, manifest.jsonl, dataset.json)."""
        return self.root / SYNTHETIC

    @property
    def manifest(self) -> Path:
        return self.synthetic / MANIFEST

    @property
    def evaluation(self) -> Path:
        """``evaluation/``: one folder per protocol, its segmenter and result."""
        return self.root / EVALUATION

    @property
    def report_json(self) -> Path:
        return self.root / REPORT_JSON

    @property
    def report_md(self) -> Path:
        return self.root / REPORT_MD

    @property
    def grid(self) -> Path:
        return self.root / GRID

    def read_report(self) -> RunReport:
        """The run's report.json; a missing or invalid file is a :class:`~msaug.errors.ConfigError` naming it."""
        return read_run_report(self.report_json)

    def kind(self) -> Kind | None:
        """``"marked"`` (has the marker), ``"legacy"`` (a run folder of a version before it) or ``None``."""
        marker = self.marker
        if marker.is_file():
            try:
                info = read_json(marker)
            except DataError:
                info = None
            if not isinstance(info, dict) or not isinstance(info.get("format"), int) or info["format"] > MARKER_FORMAT:
                raise ConfigError(
                    f"{marker}: not a run-folder marker this msaug version wrote (expected JSON with format <= {MARKER_FORMAT}); "
                    "choose another --out"
                )
            return "marked"
        resolved = self.resolved
        if resolved.is_file():
            with contextlib.suppress(OSError, UnicodeDecodeError):
                with resolved.open(encoding="utf-8") as fh:
                    first = fh.readline()
                if first.startswith(RESOLVED_HEADER) and RESOLVED_BY in first:
                    return "legacy"
        return None

    def write_marker(self, pipeline: str) -> None:
        from importlib.metadata import version  # the installed distribution's; the package root is above this layer

        write_json(
            self.marker,
            {
                "format": MARKER_FORMAT,
                "created_by": f"msaug {version('msaug')}",
                "pipeline": pipeline,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            },
        )

    def claim(self, text: str, pipeline: str, resume: bool, overwrite: bool) -> list[str]:
        """Create, check, resume or clear the run folder before any work; returns notes for the console.

        ``text`` is the new ``pipeline.resolved.yaml``. A folder that is not empty and carries no
        marker is refused whatever the flags; so is, without ``--resume`` or ``--overwrite``, a run
        folder that holds more than what a run writes before its first stage. An empty folder is
        adopted (it gets the marker), a run folder of a version before the marker too.
        """
        out = self.root
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder")
        names = {p.name for p in out.iterdir() if not _is_temp(p.name)} if out.is_dir() else set()
        kind = self.kind() if names else None
        notes: list[str] = []
        if names and kind is None:
            if resume or overwrite:
                flag = "--resume writes nothing into it" if resume else "--overwrite deletes nothing in it"
                raise ConfigError(
                    f"--out {out}: not a run folder created by msaug pipeline run (it has no {MARKER} marker), so {flag}; "
                    "choose a new or empty --out"
                )
            raise ConfigError(f"--out {out}: the folder exists, is not empty and was not created by msaug (it has no {MARKER} marker); choose a new or empty --out")
        if names and overwrite:
            notes += self.clear(pipeline)
        elif names and resume:
            remove_stale_temp_files(out)  # half-written files of the killed run
            notes += self._resume_checks(text)
        elif names and not names <= BOOKKEEPING:
            raise ConfigError(f"--out {out}: the folder exists and is not empty; pass --resume to continue that run or --overwrite to replace it")
        try:
            out.mkdir(parents=True, exist_ok=True)
            if kind != "marked":
                self.write_marker(pipeline)
            atomic_write(self.resolved, text)
        except PermissionError:
            raise DataError(f"--out {out}: no permission to write there; choose another --out") from None
        except OSError as exc:
            raise DataError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
        return notes

    def clear(self, pipeline: str) -> list[str]:
        """``--overwrite``: delete what a run writes (:data:`OWNED`); the marker stays (rewritten), so a kill leaves a run folder.

        Returns a note naming what was kept (files msaug did not write), if any.
        """
        out = self.root
        self.write_marker(pipeline)
        for name in OWNED:
            _remove(out / name)
        remove_stale_temp_files(out)
        kept = sorted(p.name for p in out.iterdir() if p.name != MARKER and not _is_temp(p.name))
        if not kept:
            return []
        return [f"--overwrite kept {len(kept)} file(s) msaug did not write in {out}: {', '.join(kept[:5])}" + (" ..." if len(kept) > 5 else "")]

    def clear_pairs(self) -> None:
        """Delete ``synthetic/`` and ``evaluation/`` (evaluation results are keyed by pair ids, not their content)."""
        _remove(self.synthetic)
        _remove(self.evaluation)

    def clear_pairs_of_other_weights(self, hashes: dict[str, str]) -> str | None:
        """Remove the run's pairs and evaluation when they came from other weights of its stages; what was done, or ``None``.

        Under ``--resume`` a stage whose weights file was damaged is rebuilt, and a rebuild that
        trains again need not reproduce the weights bit for bit: the pairs already in ``synthetic/``
        (and the segmenters trained on them) then belong to the old generator. They are the run's
        own outputs, made again from the stages as they are now, instead of refusing the resume.
        """
        synthetic = self.synthetic
        if not synthetic.is_dir():
            return None
        for entry in read_manifest(synthetic, strict=False):
            old = entry.get("stages")
            if isinstance(old, dict) and old != hashes:
                changed = sorted(k for k in {*old, *hashes} if old.get(k) != hashes.get(k))
                self.clear_pairs()
                return (f"the pairs in {synthetic} were generated by other weights of {', '.join(changed)} (rebuilt since): "
                        "synthetic/ and evaluation/ are made again from the stages as they are now")
        return None

    def _resume_checks(self, text: str) -> list[str]:
        """Refuse a change to what the stages learn; adapt the pairs to a changed generate block."""
        existing = self.resolved
        if not existing.is_file():  # killed between the marker and the resolved YAML: nothing to compare
            return []
        try:
            old = yaml.safe_load(existing.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{existing}: cannot read the run's resolved pipeline ({exc}); use a new --out, or --overwrite to start again") from None
        if not isinstance(old, dict):
            raise ConfigError(f"{existing}: not a resolved pipeline (a mapping); use a new --out, or --overwrite to start again")
        # a key that a later msaug added, at its default (absent -> null), changes nothing the run did
        # and a size an earlier msaug wrote unresolved (null: the data's size then as now) is the one now written out
        diffs = [d for d in differences(old, yaml.safe_load(text)) if not (d[1] == "(absent)" and d[2] is None) and not _resolved_size(d)]
        blocking = [d for d in diffs if _top(d[0]) in STAGE_KEYS]
        if blocking:
            shown = "; ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in blocking[:8])
            more = f" (and {len(blocking) - 8} more)" if len(blocking) > 8 else ""
            raise ConfigError(
                f"{existing}: the pipeline changed since this run started in keys that decide what the stages learn, so --resume "
                f"would mix two configurations: {shown}{more}. The generate and evaluate blocks may change under --resume "
                "(so may name and description); for anything else use a new --out, or --overwrite to start again."
            )
        changed = [k for k, _, _ in diffs]
        if not changed:
            return []
        notes = [f"changed since the run started: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''}; finished stages are kept"]
        regenerate = [k for k in changed if k in PAIR_KEYS]
        synthetic = self.synthetic
        if regenerate:
            self.clear_pairs()
            notes.append(f"{', '.join(regenerate)} changed, which changes every pair: synthetic/ and evaluation/ are made again")
        elif "generate.count" in changed and synthetic.is_dir():
            count = int(yaml.safe_load(text)["generate"]["count"])
            dropped = drop_pairs_from(synthetic, count)
            if dropped:
                notes.append(f"generate.count is now {count}: removed the {dropped} pair(s) from index {count} on")
        return notes


def _resolved_size(diff: tuple[str, Any, Any]) -> bool:
    """``stages[k].params.size: null -> 128`` (or ``in_size``/``out_size``, ``evaluate.segmenter.size``): the same size, now resolved."""
    key, before, after = diff
    return before is None and isinstance(after, int) and bool(_SIZE_KEY.fullmatch(key))


_SIZE_KEY = re.compile(r"stages\[\d+\]\.params\.(size|in_size|out_size)|evaluate\.segmenter\.size")


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _top(key: str) -> str:
    return key.split(".")[0].split("[")[0]


def drop_pairs_from(synthetic: Path, count: int) -> int:
    """Delete the pair files numbered ``count`` and up (msaug names them ``NNNNNN.png``); returns the pairs dropped.

    The manifest keeps their lines until generation finishes and rewrites it for ``0..count-1``;
    a pair whose files are gone is never taken as written.
    """
    dropped = set()
    for sub in ("images", "labels"):
        for path in (synthetic / sub).glob("*.png"):
            if path.stem.isdigit() and int(path.stem) >= count:
                path.unlink()
                dropped.add(int(path.stem))
    return len(dropped)


def drop_damaged_pairs(writer: SyntheticWriter, mine: Callable[[int], bool]) -> list[str]:
    """Delete the pair files (of the indices ``mine`` accepts) whose sha256 no longer matches the manifest.

    A file swapped, edited or damaged since it was written is then missing, so generation writes
    it again, identical to the original. Only msaug's own file names (``images/NNNNNN.png``) are
    touched, whatever a manifest line says. Returns the files dropped, relative to the set.
    """
    dropped = []
    for index, entry in sorted(writer.existing().items()):
        if not mine(index):
            continue
        digests = entry.get("sha256") if isinstance(entry.get("sha256"), dict) else {}
        for key in ("image", "label"):
            name = f"{key}s/{pair_name(index)}"
            if entry.get(key) != name:
                continue  # not a line msaug wrote; msaug data verify reports it
            path = writer.root / name
            if sha256_file(path) != digests.get(key):
                path.unlink(missing_ok=True)
                dropped.append(name)
    return dropped
