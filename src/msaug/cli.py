"""The ``msaug`` command line: click commands only, each a thin shell over the Python API."""

from __future__ import annotations

import errno
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from msaug import __version__
from msaug.console import RichReporter, make_console
from msaug.errors import MsaugError, MsaugWarning

console = make_console(stderr=True)
#: write failures a user can fix (disk full, read-only or forbidden folder)
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
out_console = make_console()


def _print_error(exc: MsaugError) -> None:
    """A user error as the one ``error:`` line every msaug command prints."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


class MsaugGroup(click.Group):
    """Turns user errors into one clear line and a non-zero exit; no traceback unless --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MsaugError as exc:
            if ctx.find_root().params.get("debug"):
                traceback.print_exc()
            _print_error(exc)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                return _internal_error(ctx, exc)
            if ctx.find_root().params.get("debug"):
                traceback.print_exc()
            target = exc.filename2 or exc.filename  # a copy or rename names its destination second
            where = f" {target}" if target else ""
            console.print(
                f"[bold red]error:[/] cannot write{escape(where)}: {escape(str(exc.strerror or exc))}. Everything finished before is kept; "
                f"free space or fix permissions, then {escape(_rerun_hint(ctx))}",
                highlight=False, soft_wrap=True,
            )
            ctx.exit(2)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: everything written so far is kept; {escape(_rerun_hint(ctx))} to continue", highlight=False, soft_wrap=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug in msaug or a plugin: say so briefly
            return _internal_error(ctx, exc)


#: key in the root context's ``meta`` under which a command leaves the exact command that continues it
RERUN = "msaug.rerun"


def _rerun_hint(ctx: click.Context) -> str:
    """How to continue after an interruption, naming only commands and options that exist."""
    root = ctx.find_root()
    command = root.meta.get(RERUN)
    if command:
        return f"rerun {command}"
    if root.invoked_subcommand == "pipeline":  # only pipeline run writes; it continues with --resume
        return "rerun with --resume"
    return "rerun the same command"


def _internal_error(ctx: click.Context, exc: Exception) -> None:
    if ctx.find_root().params.get("debug"):
        raise exc
    console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n(rerun with [bold]msaug --debug ...[/] to see the traceback)", highlight=False, soft_wrap=True)
    ctx.exit(1)


@click.group(cls=MsaugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="msaug")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """msaug: multi-stage generative augmentation for medical image segmentation."""
    warnings.showwarning = _show_warning


_PYTHON_SHOW_WARNING = warnings.showwarning
_SHOWN_WARNINGS: set[str] = set()


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    """msaug's own warnings (lossy label formats, ...) as one ``warning:`` line each, once; others as Python shows them."""
    if not issubclass(category, MsaugWarning):
        _PYTHON_SHOW_WARNING(message, category, filename, lineno, file, line)
        return
    if str(message) not in _SHOWN_WARNINGS:
        _SHOWN_WARNINGS.add(str(message))
        console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _failures_note(registries: Any) -> None:
    for failure in registries.failures:
        console.print(f"[yellow]plugin {escape(failure.plugin)}[/]: {escape(failure.reason)}", highlight=False)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)


@cli.group(cls=MsaugGroup)
def stages() -> None:
    """Registered stages."""


@stages.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--filter", "pattern", default=None, help="Glob on stage names, e.g. 'gan.*'.")
def stages_list(as_json: bool, pattern: str | None) -> None:
    """List stages with their plugin, modalities and params."""
    from msaug.plugins import get_registries
    from msaug.sample import DataSpec

    registries = get_registries()
    example = DataSpec(("class_a", "class_b"), "multilabel", 1, 256)
    rows = []
    for entry in registries.stages.entries(pattern):
        cls = entry.obj
        try:
            stage = cls(_example_params(cls), example)
            io = (str(stage.input), ", ".join(str(m) for m in stage.outputs))
        except Exception as exc:  # a stage that cannot be built from defaults: say why, list it anyway
            io = (f"(needs params: {type(exc).__name__})", "?")
        params = {name: (str(f.default) if not f.is_required() else "required") for name, f in cls.Params.model_fields.items()}
        rows.append({"name": entry.name, "plugin": entry.plugin, "input": io[0], "output": io[1], "description": entry.description, "params": params})
    if as_json:
        click.echo(json.dumps({"stages": rows, "failures": [f.__dict__ for f in registries.failures]}, indent=2))
        return
    _table("msaug stages (modalities shown for a 2-class multilabel dataset at 256 px)", ["name", "plugin", "input → output", "description"],
           [[r["name"], r["plugin"], f"{r['input']} → {r['output']}", r["description"]] for r in rows])
    _failures_note(registries)


def _example_params(cls: Any) -> dict[str, Any]:
    """Fill required size-like params (e.g. ``in_size``) so the listing can show modalities."""
    return {name: 64 for name, f in cls.Params.model_fields.items() if f.is_required() and "size" in name}


@cli.group(cls=MsaugGroup)
def datasets() -> None:
    """Registered datasets."""


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def datasets_list(as_json: bool) -> None:
    """List datasets with their plugin and description."""
    from msaug.plugins import get_registries

    registries = get_registries()
    rows = [{"name": e.name, "plugin": e.plugin, "description": e.description} for e in registries.datasets.entries()]
    if as_json:
        click.echo(json.dumps({"datasets": rows, "failures": [f.__dict__ for f in registries.failures]}, indent=2))
        return
    _table("msaug datasets", ["name", "plugin", "description"], [[r["name"], r["plugin"], r["description"]] for r in rows])
    _failures_note(registries)


@cli.group(cls=MsaugGroup)
def pipeline() -> None:
    """Check and run pipelines declared in YAML."""


def _common_pipeline_options(f: Any) -> Any:
    f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any key, e.g. --set data.size=64 (repeatable).")(f)
    f = click.option("--profile", default=None, help="Profile to apply (default: quick on CPU, full with CUDA; 'none' for none).")(f)
    return f


@pipeline.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@_common_pipeline_options
def pipeline_check(file: Path, profile: str | None, sets: tuple[str, ...]) -> None:
    """Validate a pipeline YAML and type-check its chain of stages (no training)."""
    from msaug.pipeline.runner import prepare
    from msaug.pipeline.validate import human_bytes

    prepared = prepare(file, profile, sets)
    console.print(f"profile: [bold]{prepared.resolved.profile or '(none)'}[/]")
    spec = prepared.spec
    out_console.print(f"[green]ok[/]: {file} — {prepared.config.name}, data {prepared.config.data.dataset} ({len(prepared.dataset)} cases, {spec.encoding}, classes: {', '.join(spec.classes)})")
    if prepared.split is not None:
        kind = "images and labels" if getattr(prepared.dataset, "has_images", True) else "labels only"
        out_console.print(f"  data checked ({kind}); split: {prepared.split.describe()}", highlight=False)
    data = prepared.config.data
    if data.crops:
        out_console.print(f"  the stages learn {data.crops} random {data.size} px crops of the training cases at their original "
                          "resolution; the pairs are such patches", highlight=False)
    for cs in prepared.chain.stages:
        memory = f", training memory at least {human_bytes(cs.memory)}" if cs.memory else ""
        training = f"budget {cs.budget}{memory}" if cs.stage.trainable else "no training"
        out_console.print(f"  {cs.index + 1}. {cs.use:<24} {cs.stage.input} → {', '.join(map(str, cs.stage.outputs))} ({training})",
                          highlight=False)
    out_console.print(f"  product: {prepared.chain.image} + {prepared.chain.label}", highlight=False)


@pipeline.command("run")
@click.argument("file", type=click.Path(path_type=Path))
@_common_pipeline_options
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default: runs/<name>-<profile>).")
@click.option("--resume", is_flag=True, help="Continue a killed run in --out: finished stages and pairs are kept.")
@click.option("--overwrite", is_flag=True, help="Replace what an earlier run wrote in --out.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=None, help="Training and generation seed (overrides the YAML).")
@click.option("--no-evaluate", is_flag=True, help="Skip the evaluate block.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def pipeline_run(file: Path, profile: str | None, sets: tuple[str, ...], out: Path | None, resume: bool, overwrite: bool,
                 device: str, seed: int | None, no_evaluate: bool, quiet: bool) -> None:
    """Train every stage, generate the synthetic dataset, evaluate and write a report."""
    from msaug.pipeline.runner import RunOptions, run_pipeline

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    options = RunOptions(out, profile, sets, resume, overwrite, device, seed, not no_evaluate, not quiet)
    run_pipeline(file, options, RichReporter(console, progress=not quiet))


@cli.command("generate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Pairs in total (default: the pipeline's generate.count); a set is never shrunk, only grown.")
@click.option("--shard", default=None, metavar="I/N", help="Generate only shard I of N (0-based); any sharding gives identical files.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the set into this new folder (msaug creates it) instead of RUN_DIR/synthetic; rerun to continue or grow it.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate_cmd(run_dir: Path, count: int | None, shard: str | None, out: Path | None, device: str, quiet: bool) -> None:
    """Generate (more) synthetic pairs from a finished run, deterministically per index.

    Pairs already in the target set are kept and skipped, so rerunning the same command
    continues an interrupted one.
    """
    import shlex

    from msaug.pipeline.generate import parse_shard
    from msaug.pipeline.runner import generate_run

    words = ["msaug", "generate", str(run_dir)]
    for option, value in (("--count", count), ("--shard", shard), ("--out", out), ("--device", None if device == "auto" else device)):
        words += [option, str(value)] if value is not None else []
    click.get_current_context().find_root().meta[RERUN] = shlex.join(words + (["--quiet"] if quiet else []))
    result = generate_run(run_dir, count, parse_shard(shard) if shard else None, device, RichReporter(console, progress=not quiet), not quiet, out)
    if not result.complete and shard:
        console.print("other shards are still missing; the manifest is merged when the last shard finishes")


@cli.command("compare")
@click.argument("arms", nargs=-1, required=True)
@click.option("--domain", default="xray", show_default=True, help="Domain of the single/multi aliases: pipelines/<domain>[-single].yaml.")
@click.option("--profile", default=None, help="Profile for every arm (default: quick on CPU, full with CUDA).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Seeds per arm (mean ± std over them).")
@click.option("--train-fraction", type=float, default=1.0, show_default=True, help="Share of the real training split used (0.1: the low-data experiment).")
@click.option("--budget", default=None, help="Total training budget per arm: seconds (600s) or steps (2000). Default: the pipelines' own.")
@click.option("--budgets", default=None, help="Comma list of total budgets (120s,240s,480s): one comparison each, and the cost-to-quality "
              "curve (OUT/curve.md, curve.png; OUT defaults to runs/compare-<domain>-<profile>-budgets).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default: runs/compare-<domain>-<profile>).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a key in every arm (repeatable).")
@click.option("--protocols", default=None, help="Comma list of segmentation protocols (default: all, as msaug segment train --help lists them).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare_cmd(arms: tuple[str, ...], domain: str, profile: str | None, seeds: int, train_fraction: float, budget: str | None,
                budgets: str | None, out: Path | None, device: str, sets: tuple[str, ...], protocols: str, quiet: bool) -> None:
    """Compare generation pipelines on the same data and budget (e.g. msaug compare single multi).

    Each arm is `single` (pipelines/<domain>-single.yaml), `multi` (pipelines/<domain>.yaml),
    `classic` (pipelines/examples/classic.yaml) or a pipeline YAML path.
    """
    from msaug.bench.compare import CompareOptions, compare, compare_budgets

    options = CompareOptions(list(arms), domain, profile, seeds, train_fraction, budget, out, device, list(sets), show_progress=not quiet)
    if protocols is not None:
        options.protocols = [p.strip() for p in protocols.split(",") if p.strip()]
    reporter = RichReporter(console, progress=not quiet)
    if budgets is not None:
        compare_budgets(options, [b for b in budgets.split(",") if b.strip()], reporter)
    else:
        compare(options, reporter)


@cli.group(cls=MsaugGroup)
def data() -> None:
    """Dataset tools."""


@data.command("verify")
@click.argument("target")
@click.option("--root", default=None, help="Dataset folder, when TARGET is a registered dataset name.")
@click.option("--size", type=int, default=None, help="Load size (default 256).")
@click.option("--classes", default=None, help="Plain folder or datalist: comma-separated class names.")
@click.option("--encoding", type=click.Choice(["index", "multilabel"]), default=None, help="Plain folder or datalist: label encoding.")
@click.option("--channels", type=int, default=None, help="Plain folder or datalist: image channels.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option (repeatable).")
def data_verify(target: str, root: str | None, size: int | None, classes: str | None, encoding: str | None, channels: int | None, options: tuple[str, ...]) -> None:
    """Check a dataset, a pipeline's data, a synthetic folder, an nnU-Net folder or a run folder.

    TARGET is a run folder, a synthetic/ folder, an nnU-Net raw dataset folder, a pipeline
    YAML, a MONAI/Decathlon datalist .json, a plain images/+labels/ folder (with --classes),
    or a registered dataset name (with --root). Every problem is listed; exit 1 when there is any.
    """
    from msaug.verify import parse_options, verify_target

    report = verify_target(target, root, size, parse_options(options), classes.split(",") if classes is not None else None, encoding, channels)
    for problem in report.problems[:50]:
        out_console.print(f"[red]✗[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if len(report.problems) > 50:
        out_console.print(f"... and {len(report.problems) - 50} more problems")
    for warning in report.warnings:
        out_console.print(f"[yellow]![/] {escape(warning)}", highlight=False, soft_wrap=True)
    if report.ok:
        out_console.print(f"[green]ok[/]: {escape(report.summary())}", highlight=False, soft_wrap=True)
    else:
        out_console.print(f"[red]failed[/]: {escape(report.summary())}", highlight=False, soft_wrap=True)
        raise SystemExit(1)


def _attach_optional_commands() -> None:
    """Commands that live in their own modules (segmentation, export, compare, ...)."""
    import importlib
    import importlib.util

    for module_name, names in (("msaug.cli_segment", ("segment", "export")), ("msaug.cli_plugin", ("plugin",))):
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for name in names:
            command = getattr(module, name, None)
            if isinstance(command, click.Command):
                cli.add_command(command, name)


_attach_optional_commands()


def main() -> None:
    from msaug.train.device import tune_host_allocator

    try:
        tune_host_allocator()
    except MsaugError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    cli.main(prog_name="msaug")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
