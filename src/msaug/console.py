"""The rich consoles msaug prints through, and :class:`RichReporter`, the reporter the commands hand down.

The commands (this layer) are the only part of msaug that imports rich: the code below them
reports through :class:`msaug.progress.Reporter`, and :class:`RichReporter` turns that into
what a terminal shows (coloured lines, live progress bars, tables).

Rich lays tables and text out at 80 columns when output goes to a file or a pipe, so a metrics
table in a log file came out as ``0.235±…``. Without a terminal (and without ``COLUMNS`` set)
these consoles are :data:`WIDTH_WITHOUT_TERMINAL` columns wide instead: tables keep their
natural width and lines are not wrapped, so a log holds every digit and stays greppable.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from msaug.progress import Clock, ProgressTask, Reporter

#: columns used when the output is not a terminal (tables narrower than this are never folded)
WIDTH_WITHOUT_TERMINAL = 1000


def make_console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr): the terminal's width, or :data:`WIDTH_WITHOUT_TERMINAL` in a file or pipe."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = WIDTH_WITHOUT_TERMINAL
    return console


class RichReporter(Reporter):
    """The :class:`~msaug.progress.Reporter` of the command line: rich markup and colour, live bars, rich tables.

    Messages, notes, tables and bars all go to ``console`` (the commands use stderr, so stdout
    holds only what a command prints as its result); ``progress=False`` is ``--quiet``.
    """

    def __init__(self, console: Console | None = None, progress: bool = True) -> None:
        super().__init__(progress)
        self.console = console if console is not None else make_console(stderr=True)

    def message(self, text: str) -> None:
        self.console.print(text)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(text)}", highlight=False)

    def warning(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        table = Table(title=escape(title))
        for n, column in enumerate(columns):
            table.add_column(escape(column), justify="left" if n == 0 else "right")
        for row in rows:
            table.add_row(*map(escape, row))
        self.console.print(table)

    @contextlib.contextmanager
    def _open_task(self, description: str, total: int | None, completed: int, clock: Clock, details: bool) -> Iterator[ProgressTask]:
        columns: list[ProgressColumn] = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
        shown = [TextColumn("{task.fields[details]}")] if details else []
        columns += [TimeElapsedColumn(), *shown] if clock == "elapsed" else [*shown, TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total, completed=completed, details=""))


class _RichTask(ProgressTask):
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task

    def update(self, completed: int, total: int | None = None, details: str | None = None) -> None:
        fields = {} if details is None else {"details": details}
        self.progress.update(self.task, completed=completed, **({} if total is None else {"total": total}), **fields)
