"""The diffusion stage families (``diffusion.*``), built on MONAI's generative parts.

MONAI is already a dependency (sliding-window inference), stays in torch and ships what a
denoising diffusion model needs: ``DiffusionModelUNet`` (timestep-embedded U-Net with
optional self-attention), ``DDPMScheduler`` (the forward noising used in training),
``DDIMScheduler`` (deterministic few-step sampling) and ``DiffusionInferer`` (noising,
concatenation of a conditioning map, the sampling loop). These classes are configured here,
not re-written; the training loop is msaug's own :class:`~msaug.train.trainer.Trainer`
(EMA, resumable safetensors checkpoints, roll-back, DDP, bf16) through
:class:`~msaug.train.trainer.DiffusionTrainer`.

* ``diffusion.label_generator``: noise -> label map. The model denoises the label channels
  mapped to [-1, 1] (one-hot for ``index``, independent channels for ``multilabel``); the
  sample is hardened by :func:`msaug.nn.heads.harden_logits` and cleaned of specks
  (:mod:`msaug.train.specks`), as the GAN label generator's.
* ``diffusion.translator``: label map -> image. The noisy image and the label map in [-1, 1]
  are concatenated along channels (mask conditioning as in segmentation-guided diffusion).

Sampling is DDIM with ``eta = 0``: the only randomness is the initial noise, drawn row by
row from the :class:`~msaug.rng.BatchRNG` given to ``generate``, so row *b* depends only on
``x[b]`` and stream *b* and sharded generation stays byte-identical.
"""

from __future__ import annotations

import functools
import math
from abc import abstractmethod
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from monai.inferers import DiffusionInferer
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from pydantic import Field, model_validator
from torch import nn

from msaug.errors import ConfigError
from msaug.modality import Image, Label, Noise
from msaug.nn.heads import to_signed, to_unit
from msaug.rng import BatchRNG
from msaug.stage import Budget, FitContext, Pairs, StageParams
from msaug.train.preview import as_rgb, colorize
from msaug.train.stages import CLEAN_SPECKS, ImageStageMixin, NetworkParams, NetworkStage, count_leaf_outputs
from msaug.train.trainer import DiffusionSetup, DiffusionTrainer, TrainSettings

__all__ = [
    "DiffusionLabelGeneratorParams",
    "DiffusionLabelGeneratorStage",
    "DiffusionParams",
    "DiffusionStage",
    "DiffusionTranslatorParams",
    "DiffusionTranslatorStage",
]

#: MONAI's noise schedule names offered by the params
Schedule = Literal["linear_beta", "scaled_linear_beta", "cosine"]
#: what the network predicts (MONAI's prediction types)
Prediction = Literal["epsilon", "v_prediction", "sample"]


class DiffusionParams(NetworkParams):
    """Params shared by the diffusion families: the U-Net's shape, the noise schedule, DDIM sampling."""

    size: int | None = Field(None, ge=8, le=4096, description="side of the generated maps or images (default: data.size)")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate of the denoising U-Net")
    width: int = Field(32, ge=4, le=512, description="channels of the U-Net's first level (deeper levels double it, at most 4x)")
    levels: int = Field(4, ge=2, le=6, description="resolution levels of the U-Net (the size must divide by 2**(levels-1))")
    res_blocks: int = Field(1, ge=1, le=4, description="residual blocks per level")
    attention_levels: int = Field(1, ge=0, le=6, description="deepest levels with self-attention (0: none)")
    num_train_timesteps: int = Field(1000, ge=2, le=10000, description="diffusion steps of the training noise schedule")
    schedule: Schedule = Field("linear_beta", description="MONAI noise schedule: linear_beta, scaled_linear_beta or cosine")
    prediction: Prediction = Field("v_prediction", description="what the U-Net predicts: v_prediction (default; learns far faster here), epsilon (the noise) or sample")
    sample_steps: int = Field(20, ge=1, le=1000, description="DDIM steps per generated sample (deterministic, eta = 0)")
    ema: float = Field(0.999, ge=0, lt=1, description="decay of the U-Net weights' moving average used to sample")

    @model_validator(mode="after")
    def _steps(self) -> DiffusionParams:
        if self.sample_steps > self.num_train_timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) must not exceed num_train_timesteps ({self.num_train_timesteps})")
        if self.attention_levels > self.levels:
            raise ValueError(f"attention_levels ({self.attention_levels}) must not exceed levels ({self.levels})")
        return self


class DiffusionStage(NetworkStage):
    """Shared machinery of the diffusion families: the MONAI U-Net and schedulers, the denoising loss, DDIM sampling."""

    Params: ClassVar[type[StageParams]] = DiffusionParams
    params: DiffusionParams

    @property
    def size(self) -> int:
        return self.params.size

    def check_sizes(self) -> None:
        factor = 2 ** (self.params.levels - 1)
        if self.size % factor:
            raise ConfigError(
                f"params.size = {self.size} (or data.size where unset) must be a multiple of {factor}: "
                f"the U-Net halves it {self.params.levels - 1} times (params.levels = {self.params.levels})"
            )

    # ---- what each family defines
    @property
    @abstractmethod
    def denoised_channels(self) -> int:
        """Channels the model denoises (label classes or image channels)."""

    def condition_channels(self) -> int:
        """Channels of the conditioning map concatenated to the noisy sample (0: unconditional)."""
        return 0

    def condition(self, inputs: torch.Tensor) -> torch.Tensor:
        """The conditioning map in [-1, 1] for a batch of stage inputs (conditional families only)."""
        raise NotImplementedError

    # ---- MONAI parts
    def channels(self) -> tuple[int, ...]:
        return tuple(self.params.width * 2 ** min(i, 2) for i in range(self.params.levels))

    def build_generator(self) -> nn.Module:
        p = self.params
        channels = self.channels()
        return DiffusionModelUNet(
            spatial_dims=2,
            in_channels=self.denoised_channels + self.condition_channels(),
            out_channels=self.denoised_channels,
            num_res_blocks=p.res_blocks,
            channels=channels,
            attention_levels=tuple(i >= p.levels - p.attention_levels for i in range(p.levels)),
            norm_num_groups=math.gcd(p.width, 32),  # divides every level's channels (multiples of width)
            num_head_channels=tuple(min(32, c) for c in channels),
        )

    @functools.cached_property
    def training_scheduler(self) -> DDPMScheduler:
        """The forward (noising) process the U-Net learns to reverse."""
        p = self.params
        return DDPMScheduler(num_train_timesteps=p.num_train_timesteps, schedule=p.schedule, prediction_type=p.prediction)

    def sampling_scheduler(self) -> DDIMScheduler:
        """DDIM over ``sample_steps`` of the training schedule's timesteps."""
        p = self.params
        scheduler = DDIMScheduler(num_train_timesteps=p.num_train_timesteps, schedule=p.schedule, prediction_type=p.prediction)
        scheduler.set_timesteps(p.sample_steps)
        return scheduler

    def denoising_loss(self, network: nn.Module, targets: torch.Tensor, inputs: torch.Tensor | None) -> torch.Tensor:
        """Mean squared error of the U-Net's prediction at random timesteps (noise and timesteps from torch's global RNG)."""
        scheduler = self.training_scheduler
        noise = torch.randn_like(targets)
        t = torch.randint(0, scheduler.num_train_timesteps, (targets.shape[0],), device=targets.device)
        cond = None if inputs is None else self.condition(inputs).to(targets.dtype)
        inferer = DiffusionInferer(scheduler)
        prediction = inferer(targets, network, noise, t, condition=cond, mode="concat" if cond is not None else "crossattn")
        if self.params.prediction == "epsilon":
            goal = noise
        elif self.params.prediction == "v_prediction":
            goal = scheduler.get_velocity(targets, noise, t)
        else:
            goal = targets
        return F.mse_loss(prediction.float(), goal.float())

    def sample(self, network: nn.Module, noise: torch.Tensor, inputs: torch.Tensor | None) -> torch.Tensor:
        """DDIM from ``noise`` to a sample in [-1, 1] (deterministic: eta = 0, so no randomness besides ``noise``)."""
        cond = None if inputs is None else self.condition(inputs).to(noise.dtype)
        inferer = DiffusionInferer(self.sampling_scheduler())
        out = inferer.sample(
            input_noise=noise, diffusion_model=network, conditioning=cond,
            mode="concat" if cond is not None else "crossattn", verbose=False,
        )
        assert isinstance(out, torch.Tensor)
        return out.clamp(-1, 1).contiguous()

    def _noise(self, rng: BatchRNG) -> torch.Tensor:
        return rng.normal(self.denoised_channels, self.size, self.size, device=self.device)

    def _generation_sample(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        inputs = None if x is None else x.to(self.device).float()
        return self.sample(self.generation_network(), self._noise(rng), inputs)

    # ---- Stage contract
    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        p = self.params
        settings = TrainSettings(
            lr=p.lr, batch_size=p.batch_size, grad_accum=p.grad_accum, ema=p.ema, amp=p.amp,
            log_every=p.log_every, sample_every=p.sample_every, checkpoint_every=p.checkpoint_every,
            betas=(0.9, 0.999),
        )

        def setup() -> DiffusionSetup:
            return DiffusionSetup(generator=self.build_generator(), loss=self.denoising_loss, preview=self._preview_hard)

        return self._fit_trainer(pairs, budget, ctx, setup, DiffusionTrainer, settings)

    def training_memory(self) -> int:
        """Bytes one training step needs at least (float32): one U-Net pass on the meta device, weights, Adam, EMA.

        As :meth:`msaug.train.stages.GanStage.training_memory`, a floor used to refuse what cannot fit.
        """
        try:
            with torch.device("meta"):
                network = self.build_generator()
                x = torch.zeros(1, self.denoised_channels + self.condition_channels(), self.size, self.size)
                with count_leaf_outputs(network) as count:
                    network(x, torch.zeros(1, dtype=torch.long))
        except (RuntimeError, ValueError, IndexError) as exc:
            sizes = f"{self.input} -> {', '.join(map(str, self.outputs))}"
            raise ConfigError(f"its U-Net cannot run at {sizes} ({exc}); change the stage's size params or data.size") from None
        weights = 5 * sum(p.numel() for p in network.parameters())
        micro_batch = self.params.batch_size // self.params.grad_accum
        return 4 * (micro_batch * count[0] + weights)


# --------------------------------------------------------------------------- label generator
class DiffusionLabelGeneratorParams(DiffusionParams):
    """``diffusion.label_generator``'s params (the shared ones and the speck clean-up; a plugin subclasses this to change defaults)."""

    clean_specks: bool = CLEAN_SPECKS


class DiffusionLabelGeneratorStage(DiffusionStage):
    """Noise -> label map: a denoising diffusion model (MONAI U-Net, DDIM sampling) on the label channels in [-1, 1]."""

    name: ClassVar[str] = "diffusion.label_generator"
    Params: ClassVar[type[StageParams]] = DiffusionLabelGeneratorParams
    params: DiffusionLabelGeneratorParams
    @property
    def input(self) -> Noise:
        return Noise(self.denoised_channels * self.size * self.size)

    @property
    def output(self) -> Label:
        return self._label_spec(self.size)

    @property
    def denoised_channels(self) -> int:
        return len(self.data.classes)

    def training_tensors(self, pairs: Pairs) -> tuple[None, torch.Tensor]:
        return None, to_signed(self._check("targets", pairs.targets, self.output))  # type: ignore[arg-type]

    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        fake = self._hard(self.sample(generator, torch.randn_like(targets), None))
        return [colorize(fake, self.data.encoding), colorize(to_unit(targets), self.data.encoding)]

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        if x is not None:  # a noise batch from the caller: the initial noise itself
            noise = x.to(self.device).float().reshape(-1, self.denoised_channels, self.size, self.size)
            return self._hard(self.sample(self.generation_network(), noise, None))
        return self._hard(self._generation_sample(None, rng))


# --------------------------------------------------------------------------- translator
class DiffusionTranslatorParams(DiffusionParams):
    """``diffusion.translator``'s params (the shared ones; a plugin subclasses this to change defaults)."""


class DiffusionTranslatorStage(ImageStageMixin, DiffusionStage):
    """Label map -> image: a denoising diffusion model conditioned by concatenating the label map (MONAI U-Net, DDIM)."""

    name: ClassVar[str] = "diffusion.translator"
    Params: ClassVar[type[StageParams]] = DiffusionTranslatorParams
    params: DiffusionTranslatorParams

    @property
    def input(self) -> Label:
        return self._label_spec(self.size)

    @property
    def output(self) -> Image:
        return Image(self.data.channels, self.size)

    @property
    def denoised_channels(self) -> int:
        return self.data.channels

    def condition_channels(self) -> int:
        return len(self.data.classes)

    def condition(self, inputs: torch.Tensor) -> torch.Tensor:
        return to_signed(inputs)

    def training_tensors(self, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self._check("inputs", pairs.inputs, self.input)
        return inputs, to_signed(self._check("targets", pairs.targets, self.output))  # type: ignore[arg-type]

    def preview(self, generator: nn.Module, inputs: torch.Tensor | None, targets: torch.Tensor) -> list[torch.Tensor]:
        assert inputs is not None
        fake = self.postprocess_image(to_unit(self.sample(generator, torch.randn_like(targets), inputs)), inputs)
        return [colorize(inputs, self.data.encoding), as_rgb(fake), as_rgb(to_unit(targets))]

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        if x is None:
            raise ValueError("diffusion.translator needs a batch of label maps as input")
        label = x.to(self.device).float()
        image = to_unit(self._generation_sample(label, rng))
        return self.postprocess_image(image, label)
