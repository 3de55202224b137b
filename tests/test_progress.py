"""The reporting interface below the command line (msaug.progress) and its rich rendering (msaug.console)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from msaug import FitContext, PlainReporter, Reporter, SilentReporter
from msaug.console import RichReporter
from msaug.progress import escape, strip_markup

TEXTS = [
    "plain",
    "runs/[x]/synthetic",
    "a [bold]word[/] that is not markup",
    "C:\\data\\",
    "ends with two \\\\",
    "\\[already escaped]",
    "[/]",
    "[#ff0000]hex[/]",
    "list [1, 2] stays",
]


@pytest.mark.parametrize("text", TEXTS)
def test_escape_and_strip_agree_with_rich(text: str) -> None:
    assert escape(text) == rich_escape(text)
    assert strip_markup(escape(text)) == Text.from_markup(rich_escape(text)).plain
    if not text.endswith("\\") or text.endswith("\\\\"):  # escape doubles a lone trailing backslash, as rich's does
        assert strip_markup(escape(text)) == text


@pytest.mark.parametrize("markup", ["[bold]Generated[/] 3 pairs", "[yellow]note:[/] x", "[bold green]Done[/] in 1 s: [cyan]a[/]", "a \\\\[bold]b[/]"])
def test_strip_markup_shows_what_rich_shows(markup: str) -> None:
    assert strip_markup(markup) == Text.from_markup(markup).plain


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_reporter_writes_styles_stripped_and_a_progress_line_per_interval() -> None:
    stream, clock = io.StringIO(), FakeClock()
    reporter = PlainReporter(stream, interval=10, clock=clock)
    reporter.message(f"[bold]Generated[/] 3 pairs in {escape('runs/[a]')}")
    reporter.note("2 file(s) in out/[b] generated again")
    reporter.warning("rolled back")
    with reporter.task("[bold]generating[/]", 100) as task:
        for step in range(1, 101):
            clock.now = step * 0.5  # 50 s in all: a line at 10, 20, 30, 40 and 50 s, none per step
            task.update(step, details=f"loss {1 / step:.2f}")
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["Generated 3 pairs in runs/[a]", "note: 2 file(s) in out/[b] generated again", "warning: rolled back"]
    progress = lines[3:]
    assert [line.split()[1] for line in progress] == ["20/100", "40/100", "60/100", "80/100", "100/100"]
    assert progress[0] == "generating 20/100  loss 0.05  40 s left"
    assert progress[-1] == "generating 100/100  loss 0.01  50 s"


def test_a_task_that_stops_early_says_where_it_stopped_once() -> None:
    stream, clock = io.StringIO(), FakeClock()
    reporter = PlainReporter(stream, interval=60, clock=clock)
    with pytest.raises(KeyboardInterrupt), reporter.task("01-labels", 40, completed=5, clock="elapsed") as task:
        task.update(7)
        raise KeyboardInterrupt
    assert stream.getvalue().splitlines() == ["01-labels 7/40  0 s"]


def test_without_progress_keeps_messages_and_drops_bars() -> None:
    stream = io.StringIO()
    quiet = PlainReporter(stream, interval=0).without_progress()
    assert not quiet.shows_progress
    quiet.message("[bold]kept[/]")
    with quiet.task("generating", 3) as task:
        task.update(3)
    assert stream.getvalue() == "kept\n"


def test_silent_reporter_shows_nothing(capsys) -> None:
    silent = SilentReporter()
    silent.message("x")
    silent.note("y")
    silent.table("t", ["a", "b"], [["1", "2"]])
    with silent.task("generating", 2) as task:
        task.update(2)
    assert capsys.readouterr() == ("", "")


def test_plain_table_aligns_figures_right() -> None:
    stream = io.StringIO()
    PlainReporter(stream).table("compare [x]", ["figure", "single", "multi"], [["Dice, real", "0.5 ± 0.1", "0.61 ± 0.02"], ["pairs / s", "3", "120"]])
    assert stream.getvalue().splitlines() == [
        "compare [x]",
        "figure         single        multi",
        "Dice, real  0.5 ± 0.1  0.61 ± 0.02",
        "pairs / s           3          120",
    ]


def test_fit_context_keeps_show_progress_and_gives_a_reporter(tmp_path: Path) -> None:
    assert isinstance(FitContext(tmp_path).reporter, PlainReporter) and FitContext(tmp_path).reporter.shows_progress
    quiet = FitContext(tmp_path, show_progress=False)
    assert quiet.show_progress is False and quiet.reporter.shows_progress is False  # a stage opening a task shows no bar
    seen = []
    positional = FitContext(tmp_path, None, 3, True, lambda step, total, stats: seen.append(step), True)  # the fields' old order
    positional.progress(1, 2, {})
    assert (positional.seed, seen) == (3, [1])


def recording() -> Console:
    return Console(record=True, width=100, force_terminal=False, color_system=None)


def rendered(console: Console) -> str:
    return console.export_text(clear=False)


@pytest.mark.parametrize(
    ("old_columns", "kwargs"),
    [
        # what runner.generate_step, segment.train and the trainer drew before the reporter existed
        ((TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()), {}),
        ((TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[details]}"), TimeRemainingColumn()),
         {"details": True}),
        ((TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[details]}")),
         {"details": True, "clock": "elapsed"}),
    ],
)
def test_rich_reporter_draws_the_bars_msaug_drew_before(old_columns, kwargs) -> None:
    before = recording()
    with Progress(*old_columns, console=before, transient=False) as progress:
        task = progress.add_task("segmenter", total=5, details="")
        progress.update(task, completed=5, details="loss 0.100")
    after = recording()
    with RichReporter(after).task("segmenter", 5, **kwargs) as bar:
        bar.update(5, details="loss 0.100")
    assert rendered(after) == rendered(before) and "5/5" in rendered(after)


def test_rich_reporter_messages_and_quiet() -> None:
    console = recording()
    reporter: Reporter = RichReporter(console, progress=False)
    reporter.message(f"[bold]Generated[/] 3 pairs in {escape('runs/[x]')}")
    reporter.note("kept [y]")
    with reporter.task("generating", 3) as bar:
        bar.update(3)
    reporter.table("msaug compare", ["figure", "a", "b"], [["Dice, real", "0.5", "0.6"]])
    text = rendered(console)
    assert text.splitlines()[:2] == ["Generated 3 pairs in runs/[x]", "note: kept [y]"]
    assert "generating" not in text and "Dice, real" in text and "msaug compare" in text


def test_the_cli_and_the_python_api_hand_the_runner_a_reporter(monkeypatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    import msaug
    import msaug.pipeline.runner as runner
    from msaug.cli import cli

    seen: list[Reporter] = []
    monkeypatch.setattr(runner, "run_pipeline", lambda path, options, reporter=None: seen.append(reporter) or {})
    for quiet in ([], ["--quiet"]):
        assert CliRunner().invoke(cli, ["pipeline", "run", "p.yaml", "--out", str(tmp_path / "o"), *quiet]).exit_code == 0
    msaug.run_pipeline("p.yaml", progress=False)
    mine = PlainReporter(io.StringIO())
    msaug.run_pipeline("p.yaml", reporter=mine)
    assert [type(r) for r in seen[:3]] == [RichReporter] * 3
    assert [r.shows_progress for r in seen[:3]] == [True, False, False]
    assert seen[3] is mine
