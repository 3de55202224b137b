"""``derm.lesion_mask``: noise -> lesion mask from a statistical shape model of lesion borders.

A lesion mask has few degrees of freedom: where the lesion is, how big, and how its border
departs from a circle. The stage measures exactly that on every training mask (centre,
and the log-radius of the border along ``angles`` rays, :mod:`msaug_derm.shape`), keeps the
low-frequency Fourier coefficients of the log-radius (``harmonics``), and fits a Gaussian
to the resulting feature vectors (a point-distribution model, as in Cootes' active shape
models). Generating is sampling that Gaussian and drawing the border back.

Compared with a GAN it trains instantly, needs a handful of masks, and never produces the
GAN failure modes a segmenter would learn from (two lesions, speckle, holes); it cannot
produce borders the Fourier basis cannot express (satellite lesions). Later stages of a
pipeline (``gan.label_upscaler``, ``core.label_resize`` then ``gan.translator``) add
resolution and the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from scipy import ndimage

from msaug import BatchRNG, Budget, CheckpointError, DataError, FitContext, Label, Noise, Pairs, Stage, StageParams

from msaug_derm.shape import radial_mask, radial_profile


class LesionMaskParams(StageParams):
    size: int = Field(64, ge=8, le=4096, description="side of the generated lesion masks")
    harmonics: int = Field(8, ge=1, le=32, description="Fourier harmonics of the border's log-radius the model keeps")
    angles: int = Field(64, ge=16, le=1024, description="rays along which training borders are measured")
    shrinkage: float = Field(0.2, ge=0, le=1, description="pulls the covariance towards its diagonal (0: sample covariance, 1: independent features); steadies it when masks are few")
    temperature: float = Field(1.0, ge=0, le=3, description="scale of sampled deviations from the mean shape (0: the mean lesion)")


def _lesion_channel(classes: tuple[str, ...]) -> int:
    return classes.index("lesion") if "lesion" in classes else len(classes) - 1


class LesionMask(Stage):
    """Noise -> one star-shaped lesion mask per sample, from a Gaussian shape model of the training borders."""

    name = "derm.lesion_mask"
    description = "noise -> lesion mask: Gaussian model of lesion centre and border harmonics (trains instantly)"
    Params = LesionMaskParams
    trainable = False
    params: LesionMaskParams

    def __init__(self, params: Any, data: Any):
        super().__init__(params, data)
        self.mean: torch.Tensor | None = None
        self.factor: torch.Tensor | None = None  # Cholesky factor of the feature covariance

    @property
    def input(self) -> Noise:
        return Noise(1)  # noise comes from the per-sample rng; the input only marks the chain's start

    @property
    def output(self) -> Label:
        return self.data.label.at(self.params.size)

    # ------------------------------------------------------------------ features
    def features(self, mask: np.ndarray) -> np.ndarray | None:
        """``[centre_y, centre_x, log-radius Fourier coefficients...]`` of the largest lesion in ``mask``; None if empty."""
        labelled, count = ndimage.label(mask)
        if count == 0:
            return None
        largest = labelled == 1 + int(np.argmax(ndimage.sum(mask, labelled, range(1, count + 1))))
        size = mask.shape[0]
        cy, cx = ((np.array(ndimage.center_of_mass(largest)) + 0.5) / size).tolist()
        log_radius = np.log(radial_profile(largest, (cy, cx), self.params.angles))
        spectrum = np.fft.rfft(log_radius) / self.params.angles
        kept = spectrum[: self.params.harmonics + 1]
        return np.concatenate([[cy, cx, kept[0].real], kept[1:].real, kept[1:].imag])

    def border(self, feature: np.ndarray) -> tuple[tuple[float, float], np.ndarray]:
        h, n = self.params.harmonics, self.params.angles
        spectrum = np.zeros(n // 2 + 1, dtype=complex)
        spectrum[0] = feature[2]
        spectrum[1 : h + 1] = feature[3 : 3 + h] + 1j * feature[3 + h : 3 + 2 * h]
        log_radius = np.fft.irfft(spectrum * n, n)
        return (float(feature[0]), float(feature[1])), np.exp(log_radius)

    # ------------------------------------------------------------------ Stage contract
    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        targets = pairs.targets
        assert isinstance(targets, torch.Tensor)
        channel = _lesion_channel(self.data.classes)
        rows = [f for f in (self.features(t[channel].numpy() > 0.5) for t in targets.cpu()) if f is not None]
        if len(rows) < 2:
            raise DataError(f"{self.name}: needs at least 2 training masks with a lesion, found {len(rows)} of {len(targets)}")
        x = np.stack(rows)
        mean = x.mean(axis=0)
        sample = np.cov(x, rowvar=False)
        shrink = self.params.shrinkage
        covariance = (1 - shrink) * sample + shrink * np.diag(np.diag(sample))
        covariance += 1e-9 * (np.trace(covariance) + 1e-6) * np.eye(x.shape[1])  # keeps Cholesky defined
        self.mean = torch.from_numpy(mean).float()
        self.factor = torch.from_numpy(np.linalg.cholesky(covariance)).float()
        if ctx.progress:
            ctx.progress(1, budget.steps, {})
        mean_area = float(targets[:, channel].mean())
        return {"training_masks": len(rows), "features": int(x.shape[1]), "mean_lesion_share": round(mean_area, 4)}

    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor:
        if self.mean is None or self.factor is None:
            raise RuntimeError(f"{self.name}: generate() called before fit() or load_state_dict()")
        mean, factor = self.mean.double().numpy(), self.factor.double().numpy()
        size, channel = self.params.size, _lesion_channel(self.data.classes)
        out = torch.zeros(len(rng), len(self.data.classes), size, size)
        for b in range(len(rng)):
            z = rng.numpy(b).standard_normal(len(mean)) * self.params.temperature
            centre, radii = self.border(mean + factor @ z)
            lesion = torch.from_numpy(radial_mask(size, centre, radii)).float()
            out[b, channel] = lesion
            if self.data.encoding == "index":
                out[b, 0] = 1 - lesion  # background is class 0; other structures stay empty
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.mean is None or self.factor is None:
            return {}
        return {"mean": self.mean, "factor": self.factor}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = 3 + 2 * self.params.harmonics
        if "mean" not in state or "factor" not in state or tuple(state["mean"].shape) != (expected,):
            raise CheckpointError(f"{self.name}: checkpoint needs 'mean' [{expected}] and 'factor' [{expected}, {expected}] tensors, got {sorted(state)}")
        self.mean, self.factor = state["mean"].float(), state["factor"].float()
