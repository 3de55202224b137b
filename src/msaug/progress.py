"""How msaug's code below the command line tells the user what it is doing: a :class:`Reporter`.

The runner, the trainer, the segmenter training, the evaluation and ``msaug compare`` print
their lines and draw their progress bars through the reporter they are handed; none of them
knows how it is shown. The command line hands down :class:`msaug.console.RichReporter` (colour,
live bars, tables laid out by rich); a Python user or a batch job can pass :class:`PlainReporter`
(plain lines, a progress line every ``interval`` seconds instead of a bar, fit for a log file) or
:class:`SilentReporter` (nothing at all).

Messages are written in console markup, the small language rich reads: ``"[bold]Generated[/]
12 pairs"``. A reporter that has no styles drops the tags (:func:`strip_markup`); text a user
controls (a path, a dataset name) goes in through :func:`escape` so that a ``[`` in it is shown
as it is. This module implements that markup itself, so nothing here imports rich.
"""

from __future__ import annotations

import contextlib
import copy
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, ContextManager, Literal

__all__ = ["PlainReporter", "ProgressTask", "Reporter", "SilentReporter", "escape", "strip_markup"]

#: a tag of console markup, with the backslashes before it (the same pattern as rich's)
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")

#: ``"remaining"``: estimated time left (a bar whose total is known in advance); ``"elapsed"``: time since it started
Clock = Literal["remaining", "elapsed"]


def escape(text: str) -> str:
    """``text`` made safe to put into console markup: a ``[...]`` in it is shown, not read as a style."""
    escaped = _ESCAPE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        return escaped + "\\"
    return escaped


def strip_markup(markup: str) -> str:
    """The text that console markup shows, without its styles (``escape``'d brackets come back as written)."""
    out: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        full, escapes, _ = match.groups()
        start, end = match.span()
        out.append(markup[position:start])
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            out.append("\\" * backslashes)
            if escaped:
                out.append(full[len(escapes):])  # an escaped tag is text
    out.append(markup[position:])
    return "".join(out)


class ProgressTask:
    """One progress bar; :meth:`Reporter.task` opens it. This one shows nothing (quiet, or a reporter without bars)."""

    def update(self, completed: int, total: int | None = None, details: str | None = None) -> None:
        """``completed`` of ``total`` units are done (``total``: changes the total; ``details``: the text beside the bar)."""


class Reporter:
    """Where messages and progress bars go. Subclasses implement :meth:`message` and :meth:`_open_task`.

    ``progress=False`` (``--quiet``) keeps the messages and drops the bars.
    """

    def __init__(self, progress: bool = True) -> None:
        self.shows_progress = progress

    def message(self, text: str) -> None:
        """Show one line of console markup (user-controlled parts :func:`escape`'d)."""
        raise NotImplementedError

    def note(self, text: str) -> None:
        """Something the user should know that is not a problem (plain text, shown after ``note:``)."""
        self.message(f"[yellow]note:[/] {escape(text)}")

    def warning(self, text: str) -> None:
        """Something that went wrong and was worked around (plain text, shown after ``warning:``)."""
        self.message(f"[yellow]warning:[/] {escape(text)}")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table of plain text: the first column names each row, the others hold figures (aligned right)."""
        widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        for text in (title, line(columns), *(line(r) for r in rows)):
            self.message(escape(text.rstrip()))

    def task(self, description: str, total: int | None = None, *, completed: int = 0, clock: Clock = "remaining",
             details: bool = False) -> ContextManager[ProgressTask]:
        """A progress bar while the ``with`` block runs: ``description`` (markup), ``completed`` of ``total``.

        ``clock`` is the time shown, ``details`` whether a text column (losses, a score) comes
        with it; a bar with the elapsed time shows its details after the clock, one with the
        time remaining before it. Without progress (``progress=False``) nothing is shown.
        """
        if not self.shows_progress:
            return contextlib.nullcontext(ProgressTask())
        return self._open_task(description, total, completed, clock, details)

    def _open_task(self, description: str, total: int | None, completed: int, clock: Clock, details: bool) -> ContextManager[ProgressTask]:
        return contextlib.nullcontext(ProgressTask())

    def without_progress(self) -> Reporter:
        """This reporter with its bars turned off (its messages still go where they went)."""
        quiet = copy.copy(self)
        quiet.shows_progress = False
        return quiet


class SilentReporter(Reporter):
    """Shows nothing: no messages, no bars."""

    def __init__(self) -> None:
        super().__init__(progress=False)

    def message(self, text: str) -> None:
        pass


class _PlainTask(ProgressTask):
    def __init__(self, reporter: PlainReporter, description: str, total: int | None, completed: int, clock: Clock) -> None:
        self.reporter, self.description, self.total, self.completed = reporter, strip_markup(description).strip(), total, completed
        self.clock = clock
        self.details: str | None = None
        self.started = self.last_line = reporter.clock()
        self.shown: tuple[int, int | None] | None = None

    def update(self, completed: int, total: int | None = None, details: str | None = None) -> None:
        self.completed = completed
        if total is not None:
            self.total = total
        if details is not None:
            self.details = details
        if self.reporter.clock() - self.last_line >= self.reporter.interval:
            self.line()

    def line(self) -> None:
        self.last_line = self.reporter.clock()
        self.shown = (self.completed, self.total)
        elapsed = self.last_line - self.started
        parts = [f"{self.description} {self.completed}/{'?' if self.total is None else self.total}"]
        if self.details:
            parts.append(self.details)
        if self.clock == "remaining" and self.total and 0 < self.completed < self.total:
            parts.append(f"{elapsed / self.completed * (self.total - self.completed):.0f} s left")
        else:
            parts.append(f"{elapsed:.0f} s")
        self.reporter.write("  ".join(parts))


class PlainReporter(Reporter):
    """Plain lines to ``stream`` (default: ``sys.stderr`` when written): styles dropped, no bars.

    A progress task writes a line when at most ``interval`` seconds have passed since its last
    one, and one when it ends, so a log file gets a line a minute rather than a line a step.
    """

    def __init__(self, stream: IO[str] | None = None, progress: bool = True, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(progress)
        self.stream, self.interval, self.clock = stream, interval, clock

    def write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def message(self, text: str) -> None:
        self.write(strip_markup(text))

    @contextlib.contextmanager
    def _open_task(self, description: str, total: int | None, completed: int, clock: Clock, details: bool) -> Iterator[ProgressTask]:
        task = _PlainTask(self, description, total, completed, clock)
        try:
            yield task
        finally:
            if task.shown != (task.completed, task.total):
                task.line()  # where it ended (or stopped), unless that line was just written
