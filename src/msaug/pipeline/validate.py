"""What a run will need besides the data, checked before any training.

:func:`~msaug.pipeline.runner.prepare` (so ``msaug pipeline check`` and ``pipeline run``) calls
:func:`check_before_training` after composing the chain and before reading the data
(:func:`~msaug.pipeline.datacheck.check_data`), so a typo that would fail after hours of
training fails in seconds, with one message naming the file, line and key:

* every trainable stage has a budget it can train with (not ``steps: 0``, which would
  leave it untrained, and not none at all where the trainer needs one);
* every stage's networks run at its sizes and its training fits this machine's memory
  (:meth:`GanStage.training_memory <msaug.train.stages.GanStage.training_memory>`: one pass on
  the meta device, shapes only, so a 8192 px pipeline is refused before a single case is
  rendered at that size);
* the evaluate block: the segmenter architecture and encoder exist (looked up in the
  registries, nothing downloaded), the network can be laid out (on the meta device: no
  weights allocated), a local weights file exists and fits it, and protocols that train on
  synthetic pairs have some to train on;
* ``data.crops`` (native-resolution patches): the dataset has cases at their original
  resolution, each at least ``data.size`` on both sides, the chain's product image is at
  ``data.size``, and the segmenter uses the patches at their own scale (``size: native``,
  ``patch`` at most ``data.size``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

from msaug.errors import ConfigError, MsaugError
from msaug.pipeline.composer import Chain, stage_where
from msaug.pipeline.config import LoadedYAML, format_path
from msaug.pipeline.schema import PipelineConfig
from msaug.plugins import Registries
from msaug.sample import Dataset


def human_bytes(n: float) -> str:
    """``3.2 GB``, ``512 MB`` (binary units; at least ``1 MB``)."""
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{max(1, round(n / 2**20))} MB"


def available_memory() -> tuple[int, str]:
    """``(bytes, what)`` of the memory training would use here: the first GPU's with CUDA, else RAM (cgroup limit included)."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory), "GPU memory"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total), "RAM"


def check_before_training(config: PipelineConfig, chain: Chain, dataset: Dataset, registries: Registries,
                          loaded: LoadedYAML | None = None, training: bool = True) -> None:
    """Raise a :class:`ConfigError` on the first value the run could not use (see the module docstring).

    ``training=False`` (generating from a finished run, perhaps on a smaller machine) checks the
    budgets and sizes only: the memory floor and the evaluate block concern training.
    """
    check_budgets(chain, loaded)
    check_stage_sizes_and_memory(chain, dataset, loaded, memory_limit=training)
    if config.data.crops is not None:
        check_crops(config, chain, dataset, loaded, evaluate=training)
    if config.evaluate is not None and training:
        check_evaluate(config, chain, registries, loaded)


def check_crops(config: PipelineConfig, chain: Chain, dataset: Dataset, loaded: LoadedYAML | None = None, evaluate: bool = True) -> None:
    """``data.crops``: patches at the original resolution can be cut from every case and used at their scale."""
    from msaug.sample import crop_size_problem, native_view

    def where(*key: str) -> str:
        return loaded.where(key) if loaded is not None else format_path(key)

    size = config.data.size
    if not callable(getattr(dataset, "native", None)):
        raise ConfigError(
            f"{where('data', 'crops')}: dataset {config.data.dataset!r} has no cases at an original resolution of their own "
            "(it makes them at data.size), so there is nothing to crop; leave data.crops unset, or use a dataset read from files "
            "(folder, fundus.drive, ...)"
        )
    if chain.image.size != size:
        raise ConfigError(
            f"{where('data', 'crops')}: the chain's last image is {chain.image.size} px, but the crops are data.size = {size} px; "
            "the generated patches must be at data.size to keep the original pixel scale (remove the last stage's params.size)"
        )
    for i in range(len(dataset)):
        sample, _ = native_view(dataset, i)
        h, w = sample.label.shape[-2:]
        problem = crop_size_problem(str(sample.id), h, w, size)
        if problem:
            raise ConfigError(f"{where('data', 'crops')}: {problem}")
    if evaluate and config.evaluate is not None:
        problem = config.evaluate.segmenter.patch_problem(size)
        if problem:
            raise ConfigError(f"{where('evaluate', 'segmenter')}: data.crops: {problem}")


def check_budgets(chain: Chain, loaded: LoadedYAML | None = None) -> None:
    """Every trainable stage has a budget it can train with (each stage carries its own, from its ``budget:`` block)."""
    for cs in chain.stages:
        if not cs.stage.trainable:
            continue  # stages that only gather statistics ignore their budget
        if cs.budget.steps == 0:
            raise ConfigError(
                f"{stage_where(loaded, cs.index, cs.use, 'budget', 'steps')}: 0 steps would leave the stage untrained "
                "(every generated pair would come from its random initial weights); give it at least 1 step"
            )
        if getattr(cs.stage, "needs_budget", False) and cs.budget.steps is None and cs.budget.seconds is None:
            raise ConfigError(
                f"{stage_where(loaded, cs.index, cs.use)}: a trainable stage needs a budget, e.g. budget: {{steps: 2000}} "
                "or budget: {seconds: 600} (both: whichever comes first)"
            )


def check_stage_sizes_and_memory(chain: Chain, dataset: Dataset, loaded: LoadedYAML | None = None, memory_limit: bool = True) -> None:
    """Each stage's networks run at its sizes and (``memory_limit``) its training fits this machine's memory; sets ``cs.memory``."""
    spec = dataset.spec
    # the real training cases live in memory at data.size while the stages train
    data_bytes = 4 * len(dataset) * (spec.channels + len(spec.classes)) * spec.size**2
    memory, kind = available_memory()
    for cs in chain.stages:
        estimate: Callable[[], int] | None = getattr(cs.stage, "training_memory", None)
        if not callable(estimate):
            continue
        try:
            cs.memory = int(estimate())
        except MsaugError as exc:
            raise ConfigError(f"{stage_where(loaded, cs.index, cs.use)}: {exc}") from None
        if memory_limit and cs.memory + data_bytes > memory:
            size = max(getattr(m, "size", 0) for m in (cs.stage.input, *cs.stage.outputs))
            batch = getattr(cs.stage.params, "batch_size", None)
            raise ConfigError(
                f"{stage_where(loaded, cs.index, cs.use)}: needs at least {human_bytes(cs.memory)} of memory to train at {size} px"
                + (f" with batch_size {batch}" if batch is not None else "")
                + f" (the {len(dataset)} real cases at {spec.size} px hold another {human_bytes(data_bytes)}), "
                f"more than the {human_bytes(memory)} of {kind} this machine has; lower data.size, "
                "or the stage's params.batch_size or params.width"
            )


def check_evaluate(config: PipelineConfig, chain: Chain, registries: Registries, loaded: LoadedYAML | None = None) -> None:
    """The segmenter can be built here, without a download, and the protocols have what they train on."""
    import torch

    from msaug.errors import UnknownNameError
    from msaug.segment.models import architectures, check_encoder, match_local_weights
    from msaug.segment.config import NEEDS_SYNTHETIC

    assert config.evaluate is not None
    seg = config.evaluate.segmenter

    def where(*key: str) -> str:
        return loaded.where(("evaluate", *key)) if loaded is not None else format_path(("evaluate", *key))

    if seg.arch not in registries.segmenters:
        names = registries.segmenters.names()
        close = difflib.get_close_matches(seg.arch.lower(), names, n=3, cutoff=0.6)  # "unte", "Unet": short names, loose match
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"{where('segmenter', 'arch')}: unknown segmenter {seg.arch!r}.{hint} Valid names: {', '.join(names)}.")
    entry = registries.segmenters.entry(seg.arch)
    smp_network = entry.plugin == "msaug" and seg.arch.lower() in architectures()
    if smp_network:
        try:
            check_encoder(seg.encoder)
        except UnknownNameError as exc:
            raise ConfigError(f"{where('segmenter', 'encoder')}: {exc}") from None
    if config.evaluate.inception_weights is not None:
        from msaug.segment.realism import inception_kind

        try:
            if inception_kind(config.evaluate.inception_weights) == "reference":
                import importlib.util

                if importlib.util.find_spec("torch_fidelity") is None:
                    raise ConfigError(f"{config.evaluate.inception_weights}: FID with the reference network needs the "
                                      "torch-fidelity package: pip install 'msaug[fid]'")
        except MsaugError as exc:
            raise ConfigError(f"{where('inception_weights')}: {exc}") from None
    if seg.weights is not None and not Path(seg.weights).is_file():
        raise ConfigError(f"{where('segmenter', 'weights')}: {seg.weights}: weights file not found")
    channels, classes = chain.image.channels, len(chain.label.classes)
    try:
        with torch.device("meta"):  # the layout only: no weights allocated, however large the encoder
            model = entry.obj(channels, classes, encoder=seg.encoder, weights=None)
    except MsaugError as exc:
        raise ConfigError(f"{where('segmenter')}: {exc}") from None
    except Exception:  # a plugin's builder that cannot work on the meta device: its names were checked above
        if smp_network:
            raise
        model = None
    if model is not None and seg.weights is not None:
        try:
            match_local_weights(model, seg.weights)
        except MsaugError as exc:
            raise ConfigError(f"{where('segmenter', 'weights')}: {exc}") from None
    synthetic = [p for p in dict.fromkeys(config.evaluate.protocols) if p in NEEDS_SYNTHETIC]
    if synthetic and config.generate.count == 0:
        raise ConfigError(
            f"{where('protocols')}: {synthetic} train on synthetic pairs, but generate.count is 0; "
            "generate some pairs or keep only the real protocol"
        )
