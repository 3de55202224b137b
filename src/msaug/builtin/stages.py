"""msaug's built-in, non-learned stages: classic baselines that need no GAN.

* ``core.real_labels`` — noise → label map: a training label map, randomly deformed
  (affine + elastic), the classic-augmentation baseline for label generation.
* ``core.label_resize`` — label map → label map at another size, smooth and label-safe.
* ``core.lab2im`` — label map → image: per-structure intensities drawn around the real
  data's statistics (or at random, as in SynthSeg), texture, blur, bias field and noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field

from msaug.augment import gaussian_blur, random_warp_grid, smooth_field, warp_label
from msaug.hookspecs import hookimpl
from msaug.modality import Image, Label, Noise
from msaug.plugins import StageRegistry
from msaug.label_encoding import harden
from msaug.resize import resize_label
from msaug.rng import BatchRNG
from msaug.stage import Budget, FitContext, Pairs, Stage, StageParams


class RealLabelsParams(StageParams):
    size: int | None = Field(None, ge=8, description="output size (default: data.size)")
    rotation: float = Field(8.0, ge=0, le=180, description="max rotation in degrees")
    scale: float = Field(0.08, ge=0, lt=1, description="max relative zoom")
    translate: float = Field(0.04, ge=0, lt=1, description="max shift as a fraction of the size")
    elastic: float = Field(0.03, ge=0, lt=0.5, description="elastic displacement amplitude (fraction of half-size)")


class RealLabels(Stage):
    """Noise → label map: a randomly deformed training label map (classic augmentation)."""

    name = "core.real_labels"
    description = "noise → label: a training label map with random affine + elastic deformation"
    Params = RealLabelsParams
    trainable = False
    params: RealLabelsParams

    def __init__(self, params: Any, data: Any):
        super().__init__(params, data)
        self.labels: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.params.size

    @property
    def input(self) -> Noise:
        return Noise(1)

    @property
    def output(self) -> Label:
        return self.data.label.at(self.size)

    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        targets = pairs.targets
        assert isinstance(targets, torch.Tensor)
        self.labels = targets.to(torch.uint8).cpu()
        return {"training_maps": int(self.labels.shape[0])}

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        if self.labels is None:
            raise RuntimeError(f"{self.name}: generate() called before fit() or load_state_dict()")
        p = self.params
        out = []
        for b in range(len(rng)):
            g = rng.numpy(b)
            source = self.labels[int(g.integers(len(self.labels)))].float()
            grid = random_warp_grid(g, self.size, p.rotation, p.scale, p.translate, p.elastic)
            out.append(warp_label(source, grid, self.data.encoding))
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"labels": self.labels} if self.labels is not None else {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.labels = state["labels"].to(torch.uint8)


class LabelResizeParams(StageParams):
    in_size: int = Field(ge=8, description="size of the incoming label map")
    size: int | None = Field(None, ge=8, description="output size (default: data.size)")
    smooth: float = Field(0.6, ge=0, le=10, description="boundary smoothing (Gaussian sigma in output pixels)")


class LabelResize(Stage):
    """Label map → label map at another size, with smooth, label-safe boundaries."""

    name = "core.label_resize"
    description = "label → label at another size: smooth, never interpolates label values"
    Params = LabelResizeParams
    trainable = False
    params: LabelResizeParams

    @property
    def input(self) -> Label:
        return self.data.label.at(self.params.in_size)

    @property
    def output(self) -> Label:
        return self.data.label.at(self.params.size)

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        assert x is not None
        size = self.output.size
        if size < x.shape[-1] or self.params.smooth == 0:  # shrinking follows the data's downsampling policy
            return resize_label(x, size, self.data.encoding, self.data.label_downsample)
        soft = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
        soft = gaussian_blur(soft, self.params.smooth)
        return harden(soft, self.data.encoding)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        return None


class Lab2ImParams(StageParams):
    size: int | None = Field(None, ge=8, description="image size (default: data.size)")
    randomize: bool = Field(False, description="draw structure intensities uniformly at random (SynthSeg) instead of around the real data's")
    contrast_jitter: float = Field(1.0, ge=0, le=10, description="scale of the spread of intensities around the real statistics")
    texture: float = Field(1.0, ge=0, le=10, description="scale of the learned texture noise")
    blur: tuple[float, float] = Field((0.3, 1.2), description="range of the blur sigma in pixels")
    bias_field: float = Field(0.15, ge=0, le=2, description="amplitude of the smooth multiplicative bias field")
    noise: float = Field(0.01, ge=0, le=1, description="std of additive white noise")
    intensities: list[float] | None = Field(
        None, description="labels-only data: grey level of each class (multilabel: what each channel adds to 0.1); "
        "default evenly spaced from 0.1 (first class) to 0.9 (last)"
    )


#: labels-only data: spread of each class intensity across images, and the texture level
DEFAULT_INTENSITY_SPREAD = 0.05
DEFAULT_TEXTURE = 0.02
#: multilabel, labels-only: the level of pixels outside every structure
DEFAULT_BASE = 0.1


def default_intensities(classes: int) -> list[float]:
    """Evenly spaced grey levels from 0.1 (first class) to 0.9 (last): every class stays distinct."""
    return [0.5] if classes == 1 else [round(0.1 + 0.8 * k / (classes - 1), 6) for k in range(classes)]


class Lab2Im(Stage):
    """Label map → image by a generative intensity model fitted to the real images.

    Fit: per training image, a least-squares fit of pixel intensity on the label channels
    (plus a constant) gives one intensity per structure; overlapping structures add up, as
    attenuations do along an X-ray beam. Their mean and spread across images, and the
    residual texture level, are the model. Generate: draw intensities from it, add smooth
    texture, blur, bias field and noise.

    Labels-only data (no images to fit): the model is set from ``intensities`` instead,
    by default evenly spaced grey levels from 0.1 for the first class (background) to 0.9
    for the last; for ``multilabel`` each channel adds its level to a base of 0.1 (overlaps
    add up, clamped to 1). Each intensity varies by 0.05 (std) across images and the texture
    level is 0.02, so a segmenter trained on the renderings learns shapes, not one contrast
    (SynthSeg's argument; ``randomize: true`` goes further).
    """

    name = "core.lab2im"
    description = "label → image: per-structure intensities from the real data (or defaults for labels-only data), blur, bias field, noise"
    Params = Lab2ImParams
    trainable = False
    fits_without_images = True
    params: Lab2ImParams

    def __init__(self, params: Any, data: Any):
        super().__init__(params, data)
        k = len(data.classes)
        if self.params.intensities is not None and len(self.params.intensities) != k:
            raise ValueError(f"params.intensities: needs one value per class ({k}: {', '.join(data.classes)}), got {len(self.params.intensities)}")
        self.coef_mean: torch.Tensor | None = None  # [C, K+1]
        self.coef_std: torch.Tensor | None = None
        self.residual: torch.Tensor | None = None  # [C]

    @property
    def size(self) -> int:
        return self.params.size

    @property
    def input(self) -> Label:
        return self.data.label.at(self.size)

    @property
    def output(self) -> Image:
        return self.data.image.at(self.size)

    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        assert pairs.inputs is not None
        if pairs.targets is None:
            return self._fit_defaults()
        assert isinstance(pairs.targets, torch.Tensor)
        labels, images = pairs.inputs.double(), pairs.targets.double()
        n, k = labels.shape[:2]
        design = torch.cat([torch.ones_like(labels[:, :1]), labels], dim=1).reshape(n, k + 1, -1).transpose(1, 2)
        coefs, residuals = [], []
        for i in range(n):
            target = images[i].reshape(images.shape[1], -1).T  # [P, C]
            solution = torch.linalg.lstsq(design[i], target, driver="gelsd").solution  # [K+1, C]
            coefs.append(solution.T)
            residuals.append((target - design[i] @ solution).std(dim=0))
        stacked = torch.stack(coefs)  # [N, C, K+1]
        self.coef_mean = stacked.mean(0).float()
        self.coef_std = (stacked.std(0) if n > 1 else torch.full_like(stacked[0], 0.05)).float()
        self.residual = torch.stack(residuals).mean(0).float()
        return {"images": n, "residual_std": [round(float(r), 4) for r in self.residual]}

    def _fit_defaults(self) -> dict[str, Any]:
        """The model for labels-only data: documented intensities instead of fitted ones (see the class docstring)."""
        k, channels = len(self.data.classes), self.data.channels
        levels = list(self.params.intensities or default_intensities(k))
        base = DEFAULT_BASE if self.data.encoding == "multilabel" else 0.0
        coef = torch.tensor([base, *levels], dtype=torch.float32)
        self.coef_mean = coef.expand(channels, k + 1).clone()
        self.coef_std = torch.full((channels, k + 1), DEFAULT_INTENSITY_SPREAD, dtype=torch.float32)
        self.coef_std[:, 0] = DEFAULT_INTENSITY_SPREAD if base else 0.0
        self.residual = torch.full((channels,), DEFAULT_TEXTURE, dtype=torch.float32)
        return {"images": 0, "intensities": [round(v, 4) for v in levels], "source": "defaults (labels-only data)"}

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        assert x is not None
        if self.coef_mean is None or self.coef_std is None or self.residual is None:
            raise RuntimeError(f"{self.name}: generate() called before fit() or load_state_dict()")
        p = self.params
        channels, k1 = self.coef_mean.shape
        out = []
        for b in range(x.shape[0]):
            g = rng.numpy(b)
            if p.randomize:
                coef = torch.from_numpy(g.uniform(-0.5, 1.0, size=(channels, k1)).astype(np.float32))
                coef[:, 0] = torch.from_numpy(g.uniform(0.0, 0.5, size=channels).astype(np.float32))
            else:
                jitter = torch.from_numpy(g.normal(size=(channels, k1)).astype(np.float32))
                coef = self.coef_mean + p.contrast_jitter * self.coef_std * jitter
            design = torch.cat([torch.ones_like(x[b, :1]), x[b].float()], dim=0)  # [K+1, H, W]
            image = torch.einsum("ck,khw->chw", coef, design)
            texture = torch.from_numpy(g.normal(size=image.shape).astype(np.float32))
            texture = gaussian_blur(texture, 1.0) * 2.0  # blurred unit noise has std ~0.5
            image = image + p.texture * self.residual.view(-1, 1, 1) * texture
            image = gaussian_blur(image, float(g.uniform(*p.blur)))
            image = image * smooth_field(g, self.size, amplitude=p.bias_field)
            image = image + p.noise * torch.from_numpy(g.normal(size=image.shape).astype(np.float32))
            out.append(image.clamp(0.0, 1.0))
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.coef_mean is None or self.coef_std is None or self.residual is None:
            return {}
        return {"coef_mean": self.coef_mean, "coef_std": self.coef_std, "residual": self.residual}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.coef_mean, self.coef_std, self.residual = state["coef_mean"], state["coef_std"], state["residual"]


@hookimpl
def msaug_register_stages(register: StageRegistry) -> None:
    register(RealLabels)
    register(LabelResize)
    register(Lab2Im)
