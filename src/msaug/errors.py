"""Errors a user can cause.

Every error that bad input can provoke (a YAML typo, a missing file, an unknown stage)
is raised as :class:`MsaugError`. The CLI prints its message on one line and exits
non-zero without a traceback; anything else is a bug and is shown as one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MsaugError(Exception):
    """An error caused by user input, with a message meant to be read by that user."""

    exit_code = 2


class MsaugWarning(UserWarning):
    """Something a user should know that does not stop the command (a lossy label format, ...).

    The CLI prints each as one ``warning:`` line; Python callers get it through :mod:`warnings`.
    """


class ConfigError(MsaugError):
    """A pipeline YAML, a ``--set`` override or stage params are invalid."""


class DataError(MsaugError):
    """A dataset folder or file is missing, unreadable or inconsistent."""


class CompositionError(ConfigError):
    """The stages of a pipeline do not connect."""


class UnknownNameError(MsaugError, KeyError):
    """A stage, dataset or segmenter name is not registered."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(MsaugError):
    """A checkpoint is missing, corrupt, or not a safe format."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a ``"did you mean ..."`` hint plus the valid names, for error messages."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.8)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(choices[:30]) + (" ..." if len(choices) > 30 else "")
    return f"{hint} Valid names: {shown or '(none registered)'}."
