"""The rich consoles msaug prints through: as wide as the terminal, and never cut short without one.

Rich lays tables and text out at 80 columns when output goes to a file or a pipe, so a metrics
table in a log file came out as ``0.235±…``. Without a terminal (and without ``COLUMNS`` set)
these consoles are :data:`WIDTH_WITHOUT_TERMINAL` columns wide instead: tables keep their
natural width and lines are not wrapped, so a log holds every digit and stays greppable.
"""

from __future__ import annotations

import os

from rich.console import Console

#: columns used when the output is not a terminal (tables narrower than this are never folded)
WIDTH_WITHOUT_TERMINAL = 1000


def make_console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr): the terminal's width, or :data:`WIDTH_WITHOUT_TERMINAL` in a file or pipe."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = WIDTH_WITHOUT_TERMINAL
    return console
