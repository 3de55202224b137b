"""The four GAN stage families (``gan.*``) and the bases every trained family shares, public API for domain plugins.

Domain plugins subclass these to make their own stages with other defaults, e.g.::

    class AnatomyMaskParams(LabelGeneratorParams):
        size: int | None = 64
        width: int = 24

    class AnatomyMask(LabelGeneratorStage):
        \"\"\"Chest X-ray anatomy masks (lungs, heart, clavicles) from noise.\"\"\"
        Params = AnatomyMaskParams

        def postprocess_label(self, label):
            return keep_largest_components(label)

Override points: the ``Params`` field defaults, :meth:`GanStage.postprocess_label` (hard
``[B, K, H, W]`` in, hard out; it gets maps already rid of specks smaller than the real
maps' smallest pieces, :mod:`msaug.train.specks`, unless the params set ``clean_specks: false``), :meth:`GanStage.check_sizes` (refuse sizes the networks
cannot work at, so ``msaug pipeline check`` does) and, for stages that make images,
:meth:`TranslatorStage.postprocess_image` / :meth:`JointStage.postprocess_image`.
All networks, losses and the training loop come from :mod:`msaug.nn` and
:class:`msaug.train.trainer.GanTrainer`. :class:`NetworkStage` and :class:`NetworkParams` are
what the diffusion families (:mod:`msaug.train.diffusion`) share with these.
"""

from __future__ import annotations

import contextlib
import copy
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from msaug.errors import CheckpointError, ConfigError, DataError
from msaug.modality import Image, Label, Modality, Noise
from msaug.nn.augment import parse_policy
from msaug.nn.discriminators import MultiScalePatchDiscriminator, SkipDiscriminator
from msaug.nn.generators import LabelUpscalerNet, SkipGenerator, SPADEGenerator
from msaug.nn.heads import to_signed, to_unit
from msaug.rng import BatchRNG
from msaug.sample import DataSpec
from msaug.stage import Budget, FitContext, Pairs, Stage, StageParams
from msaug.train.checkpoint import load_module
from msaug.train.device import generation_memory_format
from msaug.train.preview import as_rgb, colorize
from msaug.train.specks import CONNECTIVITY, SPECK_SHARE, remove_specks, smallest_components
from msaug.train.trainer import GanSetup, GanTrainer, Trainer, TrainSettings

__all__ = [
    "GanParams",
    "GanStage",
    "JointParams",
    "JointStage",
    "LabelGeneratorParams",
    "LabelGeneratorStage",
    "LabelUpscalerParams",
    "LabelUpscalerStage",
    "CLEAN_SPECKS",
    "NetworkParams",
    "NetworkStage",
    "TranslatorParams",
    "TranslatorStage",
    "count_leaf_outputs",
]


class NetworkParams(StageParams):
    """Params shared by every family with a trained network (training loop, optimiser, output cadence)."""

    lr: float = Field(2e-4, gt=0, le=1, description="Adam learning rate")
    batch_size: int = Field(8, ge=1, le=4096, description="real samples per step and process")
    width: int = Field(8, ge=4, le=512, description="channel multiplier of all networks (8 suits a CPU; raise it on a GPU)")
    sample_every: int = Field(200, ge=1, description="steps between sample grids (samples/step_XXXXXX.png)")
    checkpoint_every: int = Field(500, ge=1, description="steps between resumable checkpoints")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines and NaN checks")
    ema: float = Field(0.999, ge=0, lt=1, description="decay of the generator weights' moving average used to sample")
    amp: bool = Field(True, description="bf16 mixed precision on CUDA GPUs that support it (ignored on CPU)")
    grad_accum: int = Field(1, ge=1, le=256, description="micro-batches per step (batch_size must divide evenly)")

    @model_validator(mode="after")
    def _accum(self) -> NetworkParams:
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})")
        return self


#: the ``clean_specks`` param of every label-producing family (a plugin's Params may change its default)
CLEAN_SPECKS = Field(
    True,
    description=f"remove generated pieces of a structure smaller than {SPECK_SHARE:g} of its smallest {CONNECTIVITY}-connected piece "
    "in the real training maps (areas learnt while fitting)",
)

#: the state key of the learnt smallest real component areas (:attr:`NetworkStage.smallest_real_component`)
SMALLEST_COMPONENT_KEY = "smallest_real_component"


class GanParams(NetworkParams):
    """Params shared by every GAN family (adversarial loss, R1, DiffAugment)."""

    lr: float = Field(2e-4, gt=0, le=1, description="Adam learning rate of generator and discriminator")
    loss: Literal["nonsaturating", "hinge"] = Field("nonsaturating", description="adversarial loss")
    r1_gamma: float = Field(1.0, ge=0, description="weight of the R1 gradient penalty on real samples (0: off)")
    r1_every: int = Field(4, ge=1, description="steps between (lazy) R1 penalty updates")
    augment: str = Field("translation,cutout", description="DiffAugment policy: comma list of color, translation, cutout")

    @field_validator("augment")
    @classmethod
    def _augment(cls, v: str) -> str:
        parse_policy(v)
        return v


@contextlib.contextmanager
def count_leaf_outputs(network: nn.Module) -> Iterator[list[int]]:
    """Within the block, ``count[0]`` sums the elements of every tensor the leaf modules of ``network`` output.

    The training memory estimates run the networks once on the meta device inside it: what a
    forward pass keeps for the backward pass is about the leaf layers' outputs.
    """
    count = [0]

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            count[0] += output.numel()

    handles = [m.register_forward_hook(hook) for m in network.modules() if not any(True for _ in m.children())]
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()


class NetworkStage(Stage):
    """What every family with a trained network shares: the network built lazily, its state dict, devices, label helpers.

    Subclasses build the network that :meth:`generate` runs (:meth:`build_generator`) and fit it;
    after :meth:`fit` :attr:`generator` holds the EMA weights.
    """

    def __init__(self, params: StageParams | dict[str, Any] | None, data: DataSpec):
        super().__init__(params, data)
        self.check_sizes()
        self.device = torch.device("cpu")
        self._generator: nn.Module | None = None  # built on first use: listing and checking a chain build no network
        self.fitted = False
        self._layout: torch.memory_format | None = None  # the generator's memory layout for generation, once set
        #: label stages: per channel, the pixel area of the smallest component in the real training maps (None: not learnt)
        self.smallest_real_component: torch.Tensor | None = None
        #: the trainer of the last :meth:`fit` (raw and EMA networks, discriminator, optimisers, the
        #: training tensors on the device) until :meth:`release_training`
        self.trainer: Trainer | None = None

    def release_training(self) -> None:
        """Drop the trainer: :attr:`generator` (the EMA weights, a copy) is all generation needs."""
        self.trainer = None

    @property
    def generator(self) -> nn.Module:
        """The generator that :meth:`generate` runs (after :meth:`fit`, the EMA weights); built when first needed."""
        if self._generator is None:
            self._generator = self.build_generator().eval().requires_grad_(False).to(self.device)
        return self._generator

    @generator.setter
    def generator(self, module: nn.Module) -> None:
        self._generator = module
        self._layout = None

    def check_sizes(self) -> None:
        """Raise :class:`~msaug.errors.ConfigError` naming the param when the networks cannot work at the stage's sizes.

        Called when the stage is built, so ``msaug pipeline check`` refuses such params before any
        training. The default accepts every size; families with limits (the patch discriminator's
        smallest input) override it.
        """

    @abstractmethod
    def build_generator(self) -> nn.Module:
        """A fresh network of the kind :meth:`generate` runs."""

    @abstractmethod
    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        """Rows of RGB tiles for the sample grid."""

    #: the trainer stops only at a budget: ``msaug pipeline check`` refuses the stage without one
    needs_budget: ClassVar[bool] = True

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        """Clean up generated hard label maps ``[B, K, H, W]`` (default: unchanged). Must return hard maps.

        Runs after :meth:`remove_specks`, which an override does not replace.
        """
        return label

    def remove_specks(self, label: torch.Tensor) -> torch.Tensor:
        """Generated hard maps without pieces smaller than ``SPECK_SHARE`` of the real maps' smallest (:mod:`msaug.train.specks`).

        Unchanged where the params' ``clean_specks`` is false or absent (image families) and for a
        stage loaded from a file without the learnt areas.
        """
        if self.smallest_real_component is None or not getattr(self.params, "clean_specks", False):
            return label
        return remove_specks(label, self.smallest_real_component.double() * SPECK_SHARE, self.data.encoding)

    @abstractmethod
    def training_tensors(self, pairs: Pairs) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(inputs, targets)`` for the trainer: the stage inputs (or ``None``) and targets in [-1, 1]."""

    def _fit_trainer(
        self,
        pairs: Pairs,
        budget: Budget,
        ctx: FitContext,
        setup: Callable[[], Any],
        trainer_class: type[Trainer],
        settings: TrainSettings,
    ) -> dict[str, Any]:
        """Fit through ``trainer_class``: networks built by ``setup()`` from ``ctx.seed``, then sampling from the EMA weights."""
        if len(pairs) < 1:
            raise DataError(f"stage {self.name or type(self).__name__} got no training pairs")
        inputs, targets = self.training_tensors(pairs)
        learns_areas = isinstance(self.output, Label)
        if learns_areas:  # before training, so the sample grids are cleaned as generation is
            self.smallest_real_component = smallest_components(to_unit(targets), self.data.encoding)
        torch.manual_seed(ctx.seed)  # identical initial weights on every rank and every run
        parts = setup()
        from msaug.train import distributed

        torch.manual_seed(ctx.seed * 1_000_003 + 17 + distributed.rank())  # per-rank noise, augmentation, timesteps
        trainer = trainer_class(parts, settings, inputs, targets, ctx)
        summary = trainer.fit(budget)
        self.generator = copy.deepcopy(trainer.ema.module).eval().requires_grad_(False)
        self.device = torch.device(ctx.device)
        self.fitted = True
        self.trainer = trainer
        if learns_areas:
            summary = {**summary, "smallest_real_component_px": self._smallest_component_summary()}
        return summary

    def _smallest_component_summary(self) -> dict[str, int]:
        """Per foreground class, the learnt smallest real component area (pixels at the stage's size)."""
        assert self.smallest_real_component is not None
        areas = self.smallest_real_component.tolist()
        return {self.data.classes[c]: int(areas[c]) for c in self.data.label.foreground_channels}

    def _preview_hard(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`preview` with the network in eval mode (the trainer's copy may be training)."""
        was = generator.training
        generator.eval()
        try:
            return self.preview(generator, inputs, targets)
        finally:
            generator.train(was)

    def state_dict(self) -> dict[str, torch.Tensor]:
        # contiguous whatever layout generation left the weights in: safetensors stores dense tensors
        state = {f"generator.{k}": v.detach().cpu().clone(memory_format=torch.contiguous_format)
                 for k, v in self.generator.state_dict().items()}
        if self.smallest_real_component is not None:
            state[SMALLEST_COMPONENT_KEY] = self.smallest_real_component.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights (and the learnt component areas; a file saved before they existed has none: no clean-up)."""
        areas = state.get(SMALLEST_COMPONENT_KEY)
        if areas is not None and tuple(areas.shape) != (len(self.data.classes),):
            raise CheckpointError(
                f"{self.name or type(self).__name__}: checkpoint tensor {SMALLEST_COMPONENT_KEY!r} has shape "
                f"{tuple(areas.shape)}, expected ({len(self.data.classes)},), one area per label class"
            )
        try:
            load_module("generator", self.generator, state)
        except CheckpointError as exc:
            raise CheckpointError(f"{self.name or type(self).__name__}: {exc}") from None
        self.smallest_real_component = None if areas is None else areas.to(torch.int64).cpu()
        self.fitted = True

    def to(self, device: torch.device | str) -> NetworkStage:
        self.device = torch.device(device)
        if self._generator is not None:
            self._generator.to(self.device)
        self._layout = None
        return self

    def _run_generator(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The generator on ``inputs`` (on the stage's device) in the layout generation runs fastest in.

        The weights are converted once; 4-D inputs are converted per call; the output is contiguous.
        """
        fmt = generation_memory_format(self.device)
        network = self.generation_network()
        args = [t.to(self.device).float() for t in inputs]
        return network(*(t.contiguous(memory_format=fmt) if t.dim() == 4 else t for t in args)).contiguous()

    def generation_network(self) -> nn.Module:
        """:attr:`generator` with its weights in the layout generation runs fastest in (converted once)."""
        fmt = generation_memory_format(self.device)
        if self._layout != fmt:
            self.generator.to(memory_format=fmt)
            self._layout = fmt
        return self.generator

    # ---- helpers
    def _label_spec(self, size: int) -> Label:
        return self.data.label.at(size)

    def _check(self, what: str, tensor: torch.Tensor | None, modality: Modality) -> torch.Tensor:
        expected: tuple[int, ...]
        if isinstance(modality, Label):
            expected = (modality.channels, modality.size, modality.size)
        elif isinstance(modality, Image):
            expected = (modality.channels, modality.size, modality.size)
        else:
            raise TypeError(modality)
        if tensor is None or tuple(tensor.shape[1:]) != expected:
            got = None if tensor is None else tuple(tensor.shape[1:])
            raise DataError(
                f"stage {self.name or type(self).__name__}: training {what} should be {modality} "
                f"(shape [N, {', '.join(map(str, expected))}]), got {got}"
            )
        return tensor.float()

    def _hard(self, logits: torch.Tensor) -> torch.Tensor:
        return self.postprocess_label(self.remove_specks(self.data.label.harden_logits(logits)))

    def _rows(self, x: torch.Tensor | None, rng: BatchRNG) -> int:
        return int(x.shape[0]) if x is not None else len(rng)


class GanStage(NetworkStage):
    """Shared machinery of the GAN families: fit through the GAN trainer, the memory estimate, discriminators."""

    Params: ClassVar[type[StageParams]] = GanParams
    params: GanParams

    def training_memory(self) -> int:
        """Bytes one training step needs at least (float32), found by one pass of both networks on the meta device.

        The meta device computes shapes only (no memory, no arithmetic), so this is cheap at any size
        and a size the networks cannot handle fails here, as a :class:`~msaug.errors.ConfigError`,
        instead of at the first training step. Counted: every layer's output for each sample of a
        micro-batch (the generator once, the discriminator on real and generated samples), and
        weights, gradients, Adam moments and the EMA copy. Real use is higher (about twice, measured
        at 64-256 px): this is a floor, used to refuse what cannot fit.
        """
        try:
            with torch.device("meta"):
                generator, discriminator = self.build_generator(), self.build_discriminator()
                inputs = None if isinstance(self.input, Noise) else torch.zeros(1, self.input.channels, self.input.size, self.input.size)
                with count_leaf_outputs(generator) as generated, count_leaf_outputs(discriminator) as judged:
                    fake = self.make_fake(generator, inputs, 1)
                    if self.conditional:
                        assert inputs is not None
                        fake = torch.cat([fake, self.condition(inputs)], dim=1)
                    discriminator(fake)
        except (RuntimeError, ValueError, IndexError) as exc:
            sizes = f"{self.input} -> {', '.join(map(str, self.outputs))}"
            raise ConfigError(f"its networks cannot run at {sizes} ({exc}); change the stage's size params or data.size") from None
        per_sample = generated[0] + 2 * judged[0]
        weights = 5 * sum(p.numel() for p in generator.parameters()) + 4 * sum(p.numel() for p in discriminator.parameters())
        micro_batch = self.params.batch_size // self.params.grad_accum
        return 4 * (micro_batch * per_sample + weights)

    def _check_discriminator_scales(self, size: int, size_key: str) -> None:
        problem = MultiScalePatchDiscriminator.size_problem(size, self.params.scales)  # type: ignore[attr-defined]
        if problem is not None:
            raise ConfigError(f"params.scales = {self.params.scales}: {problem} (the size is {size_key})")  # type: ignore[attr-defined]

    # ---- what each family defines
    @abstractmethod
    def build_discriminator(self) -> nn.Module:
        """A fresh discriminator network."""

    @abstractmethod
    def make_fake(self, generator: nn.Module, inputs: torch.Tensor | None, n: int) -> torch.Tensor:
        """A generated training batch in the discriminator's domain (noise from torch's global RNG)."""

    def condition(self, inputs: torch.Tensor) -> torch.Tensor:
        """The map concatenated to the discriminator input for conditional families."""
        raise NotImplementedError

    conditional: ClassVar[bool] = False
    color_channels: ClassVar[int] = 0

    # ---- Stage contract
    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        p = self.params
        settings = TrainSettings(
            lr=p.lr,
            batch_size=p.batch_size,
            grad_accum=p.grad_accum,
            ema=p.ema,
            amp=p.amp,
            loss=p.loss,
            r1_gamma=p.r1_gamma,
            r1_every=p.r1_every,
            feature_matching=self.feature_matching_weight(),
            augment=parse_policy(p.augment),
            log_every=p.log_every,
            sample_every=p.sample_every,
            checkpoint_every=p.checkpoint_every,
        )

        def setup() -> GanSetup:
            return GanSetup(
                generator=self.build_generator(),
                discriminator=self.build_discriminator(),
                make_fake=self.make_fake,
                preview=self._preview_hard,
                condition=self.condition if self.conditional else None,
                color_channels=self.color_channels,
            )

        return self._fit_trainer(pairs, budget, ctx, setup, GanTrainer, settings)

    def feature_matching_weight(self) -> float:
        """Weight of the discriminator feature-matching loss (pix2pixHD); 0 turns it off."""
        return 0.0


# --------------------------------------------------------------------------- label generator
class LabelGeneratorParams(GanParams):
    size: int | None = Field(None, ge=8, le=4096, description="side of the generated label maps (default: data.size)")
    noise_dim: int = Field(128, ge=1, le=4096, description="latent vector length")
    clean_specks: bool = CLEAN_SPECKS


class LabelGeneratorStage(GanStage):
    """Noise -> label map: a few-shot unconditional GAN (skip generator, input-skip discriminator, DiffAugment, R1, EMA)."""

    name: ClassVar[str] = "gan.label_generator"
    Params: ClassVar[type[StageParams]] = LabelGeneratorParams
    params: LabelGeneratorParams

    @property
    def size(self) -> int:
        return self.params.size

    @property
    def input(self) -> Noise:
        return Noise(self.params.noise_dim)

    @property
    def output(self) -> Label:
        return self._label_spec(self.size)

    def build_generator(self) -> nn.Module:
        return SkipGenerator(self.params.noise_dim, len(self.data.classes), self.size, self.params.width)

    def build_discriminator(self) -> nn.Module:
        return SkipDiscriminator(len(self.data.classes), self.size, self.params.width)

    def training_tensors(self, pairs: Pairs) -> tuple[None, torch.Tensor]:
        return None, to_signed(self._check("targets", pairs.targets, self.output))  # type: ignore[arg-type]

    def make_fake(self, generator: nn.Module, inputs: torch.Tensor | None, n: int) -> torch.Tensor:
        z = torch.randn(n, self.params.noise_dim, device=next(generator.parameters()).device)
        return to_signed(self.data.label.probabilities(generator(z)))

    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        n = targets.shape[0]
        z = torch.randn(n, self.params.noise_dim, device=targets.device)
        fake = self._hard(generator(z))
        return [colorize(fake, self.data.encoding), colorize(to_unit(targets), self.data.encoding)]

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        z = x.to(self.device) if x is not None else rng.normal(self.params.noise_dim, device=self.device)
        return self._hard(self._run_generator(z))


# --------------------------------------------------------------------------- label upscaler
class LabelUpscalerParams(GanParams):
    in_size: int | None = Field(None, ge=4, le=4096, description="side of the input label maps (default: out_size / 4)")
    out_size: int | None = Field(None, ge=8, le=8192, description="side of the output label maps (default: data.size)")
    noise_channels: int = Field(4, ge=1, le=64, description="noise maps that vary the fine boundary detail")
    feature_matching: float = Field(10.0, ge=0, description="weight of the discriminator feature-matching loss")
    scales: int = Field(2, ge=1, le=4, description="scales of the multi-scale patch discriminator")
    loss: Literal["nonsaturating", "hinge"] = "hinge"
    r1_gamma: float = 0.0
    clean_specks: bool = CLEAN_SPECKS

    @model_validator(mode="after")
    def _sizes(self) -> LabelUpscalerParams:
        if self.in_size is not None and self.out_size is not None and self.out_size <= self.in_size:
            raise ValueError(f"out_size ({self.out_size}) must be larger than in_size ({self.in_size})")
        return self


class LabelUpscalerStage(GanStage):
    """Label map @in_size -> label map @out_size: conditional GAN with noise for varied boundary detail."""

    name: ClassVar[str] = "gan.label_upscaler"
    Params: ClassVar[type[StageParams]] = LabelUpscalerParams
    params: LabelUpscalerParams
    conditional = True

    data_size_params: ClassVar[tuple[str, ...]] = ("out_size",)

    @classmethod
    def resolve_params(cls, params: StageParams, data: DataSpec) -> StageParams:
        """``out_size`` defaults to ``data.size``, ``in_size`` to a quarter of it."""
        resolved = super().resolve_params(params, data)
        out = resolved.out_size  # type: ignore[attr-defined]
        inn = resolved.in_size or max(4, out // 4)  # type: ignore[attr-defined]
        if out <= inn:  # the composer names the stage (stages[1], xray.mask_upscale): not the family here
            raise ConfigError(f"out_size ({out}) must be larger than in_size ({inn}); set params.in_size below the output size")
        return resolved.model_copy(update={"in_size": inn})

    @property
    def out_size(self) -> int:
        return self.params.out_size  # type: ignore[return-value] - resolved by resolve_params

    @property
    def in_size(self) -> int:
        return self.params.in_size  # type: ignore[return-value] - resolved by resolve_params

    def check_sizes(self) -> None:
        self._check_discriminator_scales(self.out_size, "params.out_size, or data.size where unset")

    @property
    def input(self) -> Label:
        return self._label_spec(self.in_size)

    @property
    def output(self) -> Label:
        return self._label_spec(self.out_size)

    def feature_matching_weight(self) -> float:
        return self.params.feature_matching

    def build_generator(self) -> nn.Module:
        p = self.params
        return LabelUpscalerNet(
            len(self.data.classes), self.in_size, self.out_size, p.width, p.noise_channels,
            prior=self.data.label_downsample, encoding=self.data.encoding,
        )

    def build_discriminator(self) -> nn.Module:
        return MultiScalePatchDiscriminator(2 * len(self.data.classes), self.params.width, self.params.scales)

    def condition(self, inputs: torch.Tensor) -> torch.Tensor:
        size = (self.out_size, self.out_size)
        return to_signed(F.interpolate(inputs, size=size, mode="bilinear", align_corners=False))

    def training_tensors(self, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self._check("inputs", pairs.inputs, self.input)
        return inputs, to_signed(self._check("targets", pairs.targets, self.output))  # type: ignore[arg-type]

    def _noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.params.noise_channels, self.out_size, self.out_size, device=device)

    def make_fake(self, generator: nn.Module, inputs: torch.Tensor | None, n: int) -> torch.Tensor:
        assert inputs is not None
        logits = generator(inputs, self._noise(n, inputs.device))
        return to_signed(self.data.label.probabilities(logits))

    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        assert inputs is not None
        fake = self._hard(generator(inputs, self._noise(inputs.shape[0], inputs.device)))
        enc = self.data.encoding
        shown = F.interpolate(inputs, size=(self.out_size, self.out_size), mode="nearest")
        return [colorize(shown, enc), colorize(fake, enc), colorize(to_unit(targets), enc)]

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        if x is None:
            raise ValueError("gan.label_upscaler needs a batch of label maps as input")
        noise = rng.normal(self.params.noise_channels, self.out_size, self.out_size, device=self.device)
        return self._hard(self._run_generator(x, noise))


class ImageStageMixin:
    """What the image-making families share: colour augmentation of image channels and the image hook."""

    data: DataSpec

    @property
    def color_channels(self) -> int:
        return self.data.channels

    def postprocess_image(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Adjust generated images ``[B, C, H, W]`` in [0, 1] given their hard label maps (default: unchanged).

        Fundus stages, for instance, black out everything outside the field of view here.
        """
        return image


# --------------------------------------------------------------------------- translator
class TranslatorParams(GanParams):
    size: int | None = Field(None, ge=8, le=8192, description="side of label maps and images (default: data.size)")
    noise_dim: int = Field(64, ge=1, le=4096, description="latent vector length (diverse images per label map)")
    feature_matching: float = Field(10.0, ge=0, description="weight of the discriminator feature-matching loss")
    scales: int = Field(2, ge=1, le=4, description="scales of the multi-scale patch discriminator")
    loss: Literal["nonsaturating", "hinge"] = "hinge"
    r1_gamma: float = 0.0
    augment: str = "color,translation,cutout"


class TranslatorStage(ImageStageMixin, GanStage):
    """Label map -> image: SPADE generator, multi-scale patch discriminator, feature matching (pix2pixHD/SPADE)."""

    name: ClassVar[str] = "gan.translator"
    Params: ClassVar[type[StageParams]] = TranslatorParams
    params: TranslatorParams
    conditional = True

    @property
    def size(self) -> int:
        return self.params.size

    def check_sizes(self) -> None:
        self._check_discriminator_scales(self.size, "params.size, or data.size where unset")

    @property
    def input(self) -> Label:
        return self._label_spec(self.size)

    @property
    def output(self) -> Image:
        return Image(self.data.channels, self.size)

    def feature_matching_weight(self) -> float:
        return self.params.feature_matching

    def build_generator(self) -> nn.Module:
        p = self.params
        return SPADEGenerator(len(self.data.classes), self.data.channels, self.size, p.noise_dim, p.width)

    def build_discriminator(self) -> nn.Module:
        return MultiScalePatchDiscriminator(self.data.channels + len(self.data.classes), self.params.width, self.params.scales)

    def condition(self, inputs: torch.Tensor) -> torch.Tensor:
        return to_signed(inputs)

    def training_tensors(self, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self._check("inputs", pairs.inputs, self.input)
        return inputs, to_signed(self._check("targets", pairs.targets, self.output))  # type: ignore[arg-type]

    def make_fake(self, generator: nn.Module, inputs: torch.Tensor | None, n: int) -> torch.Tensor:
        assert inputs is not None
        z = torch.randn(n, self.params.noise_dim, device=inputs.device)
        return torch.tanh(generator(inputs, z))

    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        assert inputs is not None
        fake = to_unit(self.make_fake(generator, inputs, inputs.shape[0]))
        fake = self.postprocess_image(fake, inputs)
        return [colorize(inputs, self.data.encoding), as_rgb(fake), as_rgb(to_unit(targets))]

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        if x is None:
            raise ValueError("gan.translator needs a batch of label maps as input")
        label = x.to(self.device).float()
        z = rng.normal(self.params.noise_dim, device=self.device)
        image = to_unit(torch.tanh(self._run_generator(label, z)))
        return self.postprocess_image(image, label)


# --------------------------------------------------------------------------- joint (single-stage baseline)
class JointParams(GanParams):
    noise_dim: int = Field(128, ge=1, le=4096, description="latent vector length")
    augment: str = "color,translation,cutout"


class JointStage(ImageStageMixin, GanStage):
    """Noise -> (image, label map) jointly at data.size: the single-stage baseline, same blocks as gan.label_generator."""

    name: ClassVar[str] = "gan.joint"
    Params: ClassVar[type[StageParams]] = JointParams
    params: JointParams

    @property
    def input(self) -> Noise:
        return Noise(self.params.noise_dim)

    @property
    def output(self) -> tuple[Image, Label]:
        return (self.data.image, self.data.label)

    def build_generator(self) -> nn.Module:
        p = self.params
        return SkipGenerator(p.noise_dim, self.data.channels + len(self.data.classes), self.data.size, p.width)

    def build_discriminator(self) -> nn.Module:
        return SkipDiscriminator(self.data.channels + len(self.data.classes), self.data.size, self.params.width)

    def training_tensors(self, pairs: Pairs) -> tuple[None, torch.Tensor]:
        if not isinstance(pairs.targets, tuple) or len(pairs.targets) != 2:
            raise DataError("gan.joint: training targets must be the tuple (images, labels)")
        images = self._check("images", pairs.targets[0], self.data.image)
        labels = self._check("labels", pairs.targets[1], self.data.label)
        return None, torch.cat([to_signed(images), to_signed(labels)], dim=1)

    def _split(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.data.channels
        return torch.tanh(raw[:, :c]), raw[:, c:]

    def make_fake(self, generator: nn.Module, inputs: torch.Tensor | None, n: int) -> torch.Tensor:
        z = torch.randn(n, self.params.noise_dim, device=next(generator.parameters()).device)
        image, logits = self._split(generator(z))
        return torch.cat([image, to_signed(self.data.label.probabilities(logits))], dim=1)

    def _sample(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, logits = self._split(self._run_generator(z))
        label = self._hard(logits)
        return self.postprocess_image(to_unit(image), label), label

    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        n, c = targets.shape[0], self.data.channels
        z = torch.randn(n, self.params.noise_dim, device=targets.device)
        image, logits = self._split(generator(z))
        label = self._hard(logits)
        image = self.postprocess_image(to_unit(image), label)
        enc = self.data.encoding
        real_image, real_label = to_unit(targets[:, :c]), to_unit(targets[:, c:])
        return [as_rgb(image), colorize(label, enc), as_rgb(real_image), colorize(real_label, enc)]

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> tuple[torch.Tensor, torch.Tensor]:
        z = x.to(self.device) if x is not None else rng.normal(self.params.noise_dim, device=self.device)
        return self._sample(z.float())
