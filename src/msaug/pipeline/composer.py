"""The composer: builds the stages of a pipeline and type-checks the chain before any work.

Like kedro validating a pipeline when it is built, nothing is trained or generated until
the whole chain is known to connect: every stage's input must be produced by the stage
before it, the first stage must start from noise, and the chain must end with an image
and a label map of the same size (the synthetic pair).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pydantic import ValidationError

from msaug.errors import CompositionError, ConfigError, MsaugError
from msaug.modality import Image, Label, Modality, Noise
from msaug.pipeline.config import LoadedYAML, format_path, validation_message
from msaug.pipeline.runfolder import stage_folder_name
from msaug.plugins import Registries
from msaug.sample import DataSpec
from msaug.stage import Budget, Stage


@dataclass
class ComposedStage:
    index: int
    name: str  # short name (folder, --set paths)
    use: str  # registered name
    stage: Stage
    #: how long the stage trains (its ``budget:`` block; a stage that does not train ignores it)
    budget: Budget = field(default_factory=Budget)
    #: bytes one training step needs at least, where the stage can tell (set by the check before training)
    memory: int | None = None

    @property
    def label(self) -> str:
        return f"stage {self.index + 1} {self.use!r}" + (f" ({self.name})" if self.name != self.use.split(".")[-1] else "")

    @property
    def folder(self) -> str:
        """Its folder's name under the run folder's ``stages/``."""
        return stage_folder_name(self.index, self.name)


@dataclass
class Chain:
    stages: list[ComposedStage]
    #: (stage position, output position) of the product image and label
    image_at: tuple[int, int]
    label_at: tuple[int, int]
    #: for each stage, (stage position, output position) of its input; None for noise
    inputs: list[tuple[int, int] | None]

    @property
    def image(self) -> Image:
        s, o = self.image_at
        out = self.stages[s].stage.outputs[o]
        assert isinstance(out, Image)
        return out

    @property
    def label(self) -> Label:
        s, o = self.label_at
        out = self.stages[s].stage.outputs[o]
        assert isinstance(out, Label)
        return out

    def product_spec(self, spec: DataSpec) -> DataSpec:
        """The data spec of the synthetic pairs: the dataset's ``spec`` at the product image's channels and size."""
        image = self.image
        return dataclasses.replace(spec, channels=image.channels, size=image.size)


def build_stages(config_stages: list, spec: DataSpec, registries: Registries, loaded: LoadedYAML | None = None) -> list[ComposedStage]:
    """Instantiate each stage from the registry with validated params."""
    built = []
    for i, sc in enumerate(config_stages):
        try:
            cls = registries.stages.get(sc.use)
        except KeyError as exc:
            where = loaded.where(("stages", i, "use")) if loaded else f"stages[{i}].use"
            raise ConfigError(f"{where}: {exc}") from None
        try:
            params = cls.Params(**sc.params)
        except ValidationError as exc:
            if loaded is None:
                raise ConfigError(f"stages[{i}].params ({sc.use}): {exc}") from None
            raise ConfigError(validation_message(loaded, exc, ("stages", i, "params"), cls.Params)) from None
        try:
            stage = cls(params, spec)
            stage.input, stage.outputs  # noqa: B018 - modalities must be computable now
        except (ValueError, TypeError, MsaugError) as exc:  # sizes the stage cannot work at, among others
            raise ConfigError(f"{stage_where(loaded, i, sc.use)}: {exc}") from None
        built.append(ComposedStage(i, sc.short_name, sc.use, stage, Budget(sc.budget.steps, sc.budget.seconds)))
    return built


def stage_where(loaded: LoadedYAML | None, index: int, use: str, *key: str) -> str:
    """``file:line: stages[1] (xray.mask_upscale)`` (or ``stages[1].budget.steps (...)``) for messages about one stage.

    Names the pipeline's stage, not the family it is built from (``gan.label_upscaler``), which
    the user may never have written.
    """
    path = ("stages", index, *key)
    if loaded is None:
        return f"{format_path(path)} ({use})"
    return f"{loaded.where(path)} ({use})"


def check_chain(stages: list[ComposedStage], spec: DataSpec) -> Chain:
    """Check that the stages connect; raise :class:`CompositionError` naming both modalities."""
    if not stages:
        raise CompositionError("the pipeline has no stages")
    inputs: list[tuple[int, int] | None] = []
    for pos, cs in enumerate(stages):
        wanted = cs.stage.input
        if isinstance(wanted, Noise):
            if pos > 0:
                prev = stages[pos - 1]
                raise CompositionError(
                    f"{cs.label} starts from {wanted} but follows {prev.label}, which produced "
                    f"{_list(prev.stage.outputs)}; a noise-input stage must come first"
                )
            inputs.append(None)
            continue
        if pos == 0:
            raise CompositionError(f"{cs.label} expects {wanted}, but the first stage must start from noise")
        prev = stages[pos - 1]
        match = next((o for o, m in enumerate(prev.stage.outputs) if wanted.compatible(m)), None)
        if match is None:
            raise CompositionError(f"{cs.label} expects {wanted} but {prev.label} produced {_list(prev.stage.outputs)}")
        inputs.append((pos - 1, match))
    produced = [(s, o, m) for s, cs in enumerate(stages) for o, m in enumerate(cs.stage.outputs)]
    images = [(s, o, m) for s, o, m in produced if isinstance(m, Image)]
    if not images:
        raise CompositionError(f"the chain produces no Image (it produced {_list([m for _, _, m in produced])}); the last stage must yield an image")
    s_img, o_img, image = images[-1]
    labels = [(s, o, m) for s, o, m in produced if isinstance(m, Label) and m.size == image.size]
    if not labels:
        raise CompositionError(
            f"the chain produces {image} but no Label of the same size ({image.size} px); "
            f"it produced {_list([m for _, _, m in produced])}"
        )
    s_lab, o_lab, label = labels[-1]
    if label.classes != spec.classes or label.encoding != spec.encoding:
        raise CompositionError(f"the product label {label} does not have the dataset's classes {list(spec.classes)} ({spec.encoding})")
    return Chain(stages, (s_img, o_img), (s_lab, o_lab), inputs)


def _list(mods: tuple[Modality, ...] | list[Modality]) -> str:
    return " + ".join(str(m) for m in mods) or "nothing"
