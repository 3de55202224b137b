"""The pipeline runner: fit each stage, generate the synthetic dataset, evaluate, report.

The run folder's layout (marker, resolved YAML, split, stage folders, synthetic pairs,
evaluation, report) is :class:`msaug.pipeline.runfolder.RunFolder`'s; see its module.

Every file is written atomically. ``resume=True`` skips finished stages (``stage.json``
marks a stage complete only after its weights are on disk) and pairs already written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from msaug.data import Split, load_dataset, sample_ids, split_dataset
from msaug.errors import CheckpointError, ConfigError, DataError
from msaug.io import atomic_write, remove_stale_temp_files, write_json
from msaug.pipeline.composer import Chain, ComposedStage, build_stages, check_chain
from msaug.pipeline.config import ResolvedConfig, load_pipeline
from msaug.pipeline.datacheck import check_data
from msaug.pipeline.validate import check_before_training
from msaug.pipeline.generate import GenerationResult, check_generate_out, generate
from msaug.pipeline.runfolder import RunFolder, StageFolder, drop_damaged_pairs, stage_folder_name
from msaug.plugins import Registries, get_registries
from msaug.progress import PlainReporter, Reporter, escape
from msaug.sample import Dataset, DataSpec, Sample, SubsetDataset, native_crops
from msaug.stage import FitContext, Pairs
from msaug.synthetic import SyntheticWriter


@dataclass
class RunOptions:
    out: Path | None = None
    profile: str | None = None
    sets: Sequence[str] = ()
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    seed: int | None = None
    evaluate: bool = True
    show_progress: bool = True
    #: dotted keys to values, applied after ``sets`` (see :func:`msaug.pipeline.config.load_pipeline`)
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A validated, composed pipeline: everything known before any work starts."""

    resolved: ResolvedConfig
    registries: Registries
    dataset: Dataset
    chain: Chain
    #: the train/test split, computed (and checked) by prepare
    split: Split | None = None

    @property
    def config(self):  # noqa: ANN201 - PipelineConfig
        return self.resolved.config

    @property
    def spec(self) -> DataSpec:
        return self.dataset.spec

    def resolved_dict(self) -> dict[str, Any]:
        """The pipeline with every default made explicit (stage params included), profiles applied."""
        data = self.config.model_dump(mode="json")
        data["profiles"] = {}
        for sc, cs in zip(data["stages"], self.chain.stages):
            sc["name"] = cs.name
            sc["params"] = cs.stage.params.model_dump(mode="json")  # sizes resolved by the stage (Stage.resolve_params)
        segmenter = (data.get("evaluate") or {}).get("segmenter")
        if segmenter is not None and segmenter.get("size") is None:  # unset: the segmenter works at data.size
            segmenter["size"] = self.config.data.size
        return data


def prepare(path: str | Path, profile: str | None = None, sets: Sequence[str] = (), registries: Registries | None = None,
            training: bool = True, overrides: Mapping[str, Any] | None = None) -> Prepared:
    """Load, validate and compose a pipeline and check its data (reads label files, trains nothing).

    ``training=False`` (generating from, or measuring, a finished run) skips what only training
    and evaluation need: the memory floor and the evaluate block. ``sets`` (``--set`` strings) and
    ``overrides`` (dotted keys to values) are applied as :func:`~msaug.pipeline.config.load_pipeline` says.

    Everything a user can get wrong fails here, before any training: the YAML, the chain's
    modalities, and the data (:func:`~msaug.pipeline.datacheck.check_data`: file values and
    sizes, what each stage learns from, the split).
    """
    resolved = load_pipeline(path, profile, sets, overrides)
    registries = registries or get_registries()
    config = resolved.config
    try:
        registries.datasets.entry(config.data.dataset)
    except KeyError as exc:
        raise ConfigError(f"{resolved.loaded.where(('data', 'dataset'))}: {exc}") from None
    dataset = load_dataset(config.data, registries)
    stages = build_stages(config.stages, dataset.spec, registries, resolved.loaded)
    chain = check_chain(stages, dataset.spec)
    check_before_training(config, chain, dataset, registries, resolved.loaded, training)  # budgets, sizes, memory, evaluate block
    checked = check_data(config.data, dataset, chain, resolved.loaded, evaluate=config.evaluate is not None)
    return Prepared(resolved, registries, dataset, chain, checked.split)


def resolved_yaml(prepared: Prepared) -> str:
    r = prepared.resolved
    header = [
        f"# Resolved from {r.loaded.path} by msaug pipeline run",
        f"# profile: {r.profile or '(none)'}",
        *(f"# --set {s}" for s in r.sets),
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(prepared.resolved_dict(), sort_keys=False)


def make_pairs(cs: ComposedStage, samples: Sequence[Sample], spec: DataSpec) -> Pairs:
    """Training pairs for one stage: views of the real training samples (teacher forcing)."""
    return Pairs.from_samples(cs.stage, samples, spec, cs.label)


def save_stage(cs: ComposedStage, folder: StageFolder, summary: dict[str, Any], seconds: float) -> str:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in cs.stage.state_dict().items()}
    blob = save(state, metadata={"stage": cs.use})
    atomic_write(folder.weights, blob)
    digest = hashlib.sha256(blob).hexdigest()
    write_json(
        folder.info_file,
        {
            "use": cs.use,
            "name": cs.name,
            "params": cs.stage.params.model_dump(mode="json"),
            "input": str(cs.stage.input),
            "outputs": [str(m) for m in cs.stage.outputs],
            "budget": {"steps": cs.budget.steps, "seconds": cs.budget.seconds},
            "seconds": round(seconds, 3),
            "summary": summary,
            "sha256": digest,
            "complete": True,
        },
    )
    return digest


def load_stage(cs: ComposedStage, folder: StageFolder) -> dict[str, Any]:
    """Restore a finished stage from its folder; returns its stage.json."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = folder.read_info()
    weights = folder.weights
    problem = folder.weights_problem(info)
    if problem is not None:
        run = folder.run
        raise CheckpointError(
            f"{weights}: {problem}; msaug pipeline run {run.resolved} --out {run.root} --resume rebuilds only this stage "
            "(from its last training checkpoint where it has one) and keeps the other stages and the pairs"
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a valid safetensors file ({exc})") from None
    cs.stage.load_state_dict(state)
    return info


def product_spec(prepared: Prepared) -> DataSpec:
    """The spec of the run's pairs; ``patches`` under ``data.crops`` (they are native-resolution patches)."""
    spec = prepared.chain.product_spec(prepared.spec)
    return dataclasses.replace(spec, patches=True) if prepared.config.data.crops else spec


def stage_samples(prepared: Prepared, cases: Dataset) -> list[Sample]:
    """What the stages learn from: the cases at ``data.size``, or under ``data.crops`` that many patches of them at their original resolution."""
    data = prepared.config.data
    if data.crops:
        return native_crops(cases, data.size, data.crops, prepared.config.seed).samples
    return [cases[i] for i in range(len(cases))]


@dataclass
class RunState:
    out: Path
    device: torch.device
    stage_info: list[dict[str, Any]] = field(default_factory=list)
    generation: GenerationResult | None = None
    #: views of ``prepared.dataset`` (``native()`` passes through for the evaluation)
    train: Dataset | None = None
    test: Dataset | None = None

    @property
    def folder(self) -> RunFolder:
        """The run folder's layout (``out`` is its root)."""
        return RunFolder(self.out)


def fit_stages(prepared: Prepared, state: RunState, resume: bool, reporter: Reporter) -> None:
    from msaug.train import distributed

    config = prepared.config
    samples = stage_samples(prepared, state.train) if state.train else []
    total = len(prepared.chain.stages)
    for cs in prepared.chain.stages:
        folder = state.folder.stage(cs.folder)
        cs.stage.to(state.device)
        head = f"[bold]Stage {cs.index + 1}/{total}[/] {cs.use} ({cs.stage.input} → {', '.join(map(str, cs.stage.outputs))})"
        if resume and folder.complete():
            problem = folder.weights_problem(folder.read_info())
            if problem is None:
                info = load_stage(cs, folder)
                cs.stage.to(state.device)
                reporter.message(f"{head}: [green]done earlier[/], loaded {escape(str(folder.weights))}")
                state.stage_info.append(info)
                continue
            # only this stage is rebuilt; fit resumes from its last training checkpoint (the final step, for a finished stage)
            source = "its last training checkpoint" if folder.has_checkpoint else "the start"
            reporter.message(f"{head}: [yellow]{escape(str(folder.weights))}: {escape(problem)}[/]; rebuilding this stage from {source}")
        what = f"{len(samples)} real {'patches' if config.data.crops else 'pairs'}"
        verb = f"fitting on {what}, budget {cs.budget}" if cs.stage.trainable else f"preparing from {what} (no training)"
        reporter.message(f"{head}: {verb}")
        pairs = make_pairs(cs, samples, prepared.spec)
        ctx = FitContext(out_dir=folder.path, device=state.device, seed=config.seed + cs.index, resume=resume, show_progress=reporter.shows_progress,
                         reporter=reporter)
        folder.path.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        summary = cs.stage.fit(pairs, cs.budget, ctx) or {}
        seconds = time.monotonic() - start
        cs.stage.to(state.device)
        if distributed.is_main():
            save_stage(cs, folder, summary, seconds)
        distributed.barrier()
        cs.stage.release_training()  # its optimisers, discriminator and training tensors are not needed any more
        info = folder.read_info()
        state.stage_info.append(info)
        reporter.message(f"  finished in {seconds:.1f} s")


def stage_hashes(state: RunState) -> dict[str, str]:
    return {stage_folder_name(i, info["name"]): info["sha256"][:16] for i, info in enumerate(state.stage_info)}


def generate_step(prepared: Prepared, state: RunState, count: int, shard: tuple[int, int] | None, reporter: Reporter,
                  synthetic_dir: Path | None = None) -> GenerationResult:
    """Generate the missing pairs of ``shard`` into ``synthetic_dir`` (default: the run's ``synthetic/``)."""
    from msaug.train import distributed

    gen = prepared.config.generate
    if shard is None:
        shard = (distributed.rank(), distributed.world_size())
    writer = SyntheticWriter(synthetic_dir or state.folder.synthetic, product_spec(prepared), gen.bit_depth)
    damaged = drop_damaged_pairs(writer, lambda i: i < count and (i // gen.batch_size) % shard[1] == shard[0])
    if damaged:
        reporter.note(f"{len(damaged)} file(s) in {writer.root} no longer matched the sha256 in the manifest and are "
                      f"generated again: {', '.join(damaged[:5])}{' ...' if len(damaged) > 5 else ''}")
    for cs in prepared.chain.stages:
        if hasattr(cs.stage, "eval"):
            cs.stage.eval()
    with reporter.task("generating") as bar:
        result = generate(prepared.chain, writer, count, gen.batch_size, gen.seed, state.device, shard, stage_hashes(state), bar.update)
    distributed.barrier()
    if shard[1] > 1 and distributed.is_main():
        everything = writer.existing()
        if all(i in everything for i in range(count)):
            writer.finalize({i: everything[i] for i in range(count)})
            result.complete = True
    reporter.message(
        f"[bold]Generated[/] {result.written} pairs in {result.seconds:.1f} s"
        + (f" ({result.pairs_per_second:.1f} pairs/s)" if result.written else "")
        + (f", {result.skipped} already on disk" if result.skipped else "")
    )
    state.generation = result
    return result


def split_data(prepared: Prepared, state: RunState) -> None:
    """``state.train`` / ``state.test`` as views of the dataset by the checked split; writes ``split.json``."""
    config = prepared.config
    split = prepared.split or split_dataset(prepared.dataset, config.data)
    state.train = SubsetDataset(prepared.dataset, split.train)
    state.test = SubsetDataset(prepared.dataset, split.test)
    from msaug.train import distributed

    if distributed.is_main():
        ids = sample_ids(prepared.dataset)
        record: dict[str, Any] = {
            "dataset": config.data.dataset,
            "by": split.by,
            "seed": config.data.split.seed,
            "fraction": split.fraction,
            "train": [ids[i] for i in split.train],
            "test": [ids[i] for i in split.test],
        }
        if split.groups is not None:
            record["group_by"] = config.data.split.group_by
            record["groups"] = {"train": split.groups_in(split.train), "test": split.groups_in(split.test)}
            record["group_of"] = {ids[i]: split.groups[i] for i in (*split.train, *split.test)}
        write_json(state.folder.split, record)


def default_out(prepared: Prepared) -> Path:
    """``runs/<name>-<profile>``; the schema keeps path separators out of the name, this out of the profile."""
    profile = prepared.resolved.profile or "default"
    if any(c in profile for c in "/\\"):
        raise ConfigError(f"profile {profile!r}: cannot name the default run folder runs/{prepared.config.name}-{profile}; pass --out")
    return Path("runs") / f"{prepared.config.name}-{profile}"


def run_pipeline(path: str | Path, options: RunOptions, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run a pipeline end to end; returns the report (also written to OUT/report.json).

    Messages and bars go to ``reporter`` (default: plain lines on stderr); ``options.show_progress=False``
    turns its bars off.
    """
    from msaug.pipeline.evaluate import evaluate_run
    from msaug.pipeline.report import write_report
    from msaug.train import distributed
    from msaug.train.device import resolve_device

    started = time.monotonic()
    reporter = reporter if reporter is not None else PlainReporter()
    if not options.show_progress:
        reporter = reporter.without_progress()
    overrides = dict(options.overrides)
    if options.seed is not None:
        overrides.update({"seed": options.seed, "generate.seed": options.seed})
    prepared = prepare(path, options.profile, options.sets, overrides=overrides)
    config = prepared.config
    reporter.message(f"[bold]msaug[/] pipeline [cyan]{config.name}[/] — profile: [bold]{escape(prepared.resolved.profile or '(none)')}[/]")
    distributed.init_from_env()
    device = resolve_device(options.device)
    out = Path(options.out) if options.out else default_out(prepared)
    if distributed.is_main():
        for note in RunFolder(out).claim(resolved_yaml(prepared), config.name, options.resume, options.overwrite):
            reporter.note(note)
    distributed.barrier()
    reporter.message(f"device: {device}; run folder: {escape(str(out))}")
    state = RunState(out, device)
    split_data(prepared, state)
    assert state.train is not None and state.test is not None
    if len(state.train) < 1:
        raise DataError(f"dataset {config.data.dataset!r}: no training samples after the split")
    reporter.message(f"data: {escape(config.data.dataset)}, {len(state.train)} train / {len(state.test)} test cases at {config.data.size} px")
    fit_stages(prepared, state, options.resume, reporter)
    if options.resume and distributed.is_main():
        note = state.folder.clear_pairs_of_other_weights(stage_hashes(state))
        if note:
            reporter.note(note)
    distributed.barrier()
    generate_step(prepared, state, config.generate.count, None, reporter)
    report: dict[str, Any] = {}
    if distributed.is_main():
        evaluation = evaluate_run(prepared, state, reporter, reporter.shows_progress) if config.evaluate is not None and options.evaluate else None
        report = write_report(prepared, state, reporter, started, evaluation)
    distributed.shutdown()
    return report


def generate_run(run_dir: str | Path, count: int | None, shard: tuple[int, int] | None, device: str = "auto",
                 reporter: Reporter | None = None, show_progress: bool = True, out: str | Path | None = None) -> GenerationResult:
    """``msaug generate``: more pairs (or a shard of them) from a finished run's checkpoints.

    They go into the run's ``synthetic/``, or into ``out``: a new folder, or a set an earlier call
    wrote there, which is continued (see :func:`msaug.pipeline.generate.check_generate_out`).
    """
    from msaug.train import distributed
    from msaug.train.device import resolve_device

    reporter = reporter if reporter is not None else PlainReporter()
    if not show_progress:
        reporter = reporter.without_progress()
    run = RunFolder(Path(run_dir))
    if not run.resolved.is_file():
        raise DataError(f"{run.root}: no {run.resolved.name}; is this a run folder written by msaug pipeline run?")
    prepared = prepare(run.resolved, profile="none", training=False)
    distributed.init_from_env()
    state = RunState(run.root, resolve_device(device))
    for cs in prepared.chain.stages:
        folder = run.stage(cs.folder)
        if not folder.complete():
            raise CheckpointError(f"{folder.path}: the stage has not finished training; run msaug pipeline run {run.resolved} --out {run.root} --resume first")
        state.stage_info.append(load_stage(cs, folder))
        cs.stage.to(state.device)
    target = run.synthetic if out is None else Path(out)
    if out is not None:
        check_generate_out(target)
    if target.is_dir():
        remove_stale_temp_files(target)  # half-written files of a killed msaug generate
    n = prepared.config.generate.count if count is None else count
    result = generate_step(prepared, state, n, shard, reporter, target)
    distributed.shutdown()
    return result
