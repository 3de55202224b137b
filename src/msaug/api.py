"""Running a pipeline from Python: the same code path as ``msaug pipeline run``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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
    return run(path, options)
