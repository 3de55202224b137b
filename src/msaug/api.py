"""Running a pipeline from Python: the same code path as ``msaug pipeline run``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msaug.progress import Reporter


def run_pipeline(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    sets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    seed: int | None = None,
    evaluate: bool = True,
    progress: bool = True,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Train every stage, generate the synthetic dataset, evaluate; returns the report.

    The keywords are ``msaug pipeline run``'s options (``sets`` are its ``--set KEY=VALUE``
    strings, ``evaluate=False`` is ``--no-evaluate``, ``progress=False`` is ``--quiet``;
    ``overrides`` maps dotted keys to Python values, ``{"data.size": 64, "stages.image.budget":
    {"steps": 200}}``, applied after ``sets`` by the same path and checked the same way) and
    the run does exactly what the command does: the run folder (``out``, default
    ``runs/<name>-<profile>``) gets the same files, ``OUT/report.json`` holds the returned
    report and ``msaug.SyntheticDataset(out)`` reads the pairs. Errors a user can cause are
    raised as :class:`msaug.MsaugError` subclasses with the message the command prints.

    Its lines and progress bars go to ``reporter`` (a :class:`msaug.Reporter`): by default the
    command's own, coloured on stderr, without bars when ``progress=False``;
    ``msaug.PlainReporter(stream)`` writes plain lines fit for a log, ``msaug.SilentReporter()``
    nothing.
    """
    from msaug.pipeline.runner import RunOptions
    from msaug.pipeline.runner import run_pipeline as run

    if resume and overwrite:
        from msaug.errors import ConfigError

        raise ConfigError("run_pipeline: resume=True and overwrite=True exclude each other")
    if isinstance(sets, str):
        sets = [sets]
    options = RunOptions(None if out is None else Path(out), profile, tuple(sets), resume, overwrite, device, seed, evaluate, progress,
                         dict(overrides or {}))
    if reporter is None:
        from msaug.console import RichReporter

        reporter = RichReporter(progress=progress)
    return run(path, options, reporter)
