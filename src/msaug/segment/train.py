"""The segmenter training loop shared by every protocol.

Training is counted in optimiser *steps*, not epochs, so protocols whose datasets differ
in size (20 real pairs, 500 synthetic ones) get exactly the same budget. Each batch is
drawn from one or more sources at fixed shares (the ``mix`` protocol), brought to the
segmenter's square (generated pairs are enlarged batch by batch), cut to random patches when
the segmenter has a ``patch`` smaller than its square (:func:`~msaug.segment.data.random_crops`:
full-resolution detail at a fraction of the cost), augmented jointly
(:class:`~msaug.segment.data.Augmentation`), and the network is validated every
``eval_every`` steps on real validation squares through the same prediction path as the test
(whole squares or sliding windows); the best state by validation Dice is kept.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the network is wrapped in
DistributedDataParallel (gloo on CPU, NCCL on GPU); each rank draws its own batches from
its own seeded stream, so the effective batch is ``batch_size x world size``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from msaug.label_encoding import harden_logits
from msaug.progress import PlainReporter, Reporter
from msaug.train import distributed
from msaug.segment.data import Augmentation, SegmentationTensors, at_size, random_crops
from msaug.segment.inference import padded_forward
from msaug.segment.metrics import dice_per_image, foreground_classes
from msaug.segment.segmenter import Segmenter


@dataclass
class TrainSettings:
    """Budget and optimiser of one training run."""

    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: validate every this many steps (default: ten times per run)
    eval_every: int | None = None
    augmentation: Augmentation | None = field(default_factory=Augmentation)
    seed: int = 0
    show_progress: bool = True
    description: str = "segmenter"
    #: where the progress bar goes (``show_progress=False``: none); plain lines on stderr unless the caller passes its own
    reporter: Reporter = field(default_factory=PlainReporter)


@dataclass
class TrainResult:
    best_step: int
    best_val_dice: float | None
    final_loss: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "best_step": self.best_step,
            "best_val_dice": self.best_val_dice,
            "final_loss": self.final_loss,
            "seconds": round(self.seconds, 2),
        }


def shares_to_counts(shares: Sequence[float], batch_size: int) -> list[int]:
    """Split ``batch_size`` items across sources by share (largest remainder, exact total)."""
    total = sum(shares)
    if total <= 0:
        raise ValueError("source shares must add up to more than 0")
    exact = [batch_size * s / total for s in shares]
    counts = [int(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)[: batch_size - sum(counts)]:
        counts[i] += 1
    return counts


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, encoding: str) -> torch.Tensor:
    """Cross-entropy (softmax or per-channel sigmoid) plus soft Dice, which copes with thin or small structures."""
    from segmentation_models_pytorch.losses import DiceLoss

    if encoding == "index":
        index = target.argmax(dim=1)
        return F.cross_entropy(logits, index) + DiceLoss("multiclass", from_logits=True)(logits, index)
    return F.binary_cross_entropy_with_logits(logits, target) + DiceLoss("multilabel", from_logits=True)(logits, target)


@torch.no_grad()
def validation_dice(segmenter: Segmenter, val: SegmentationTensors, batch_size: int = 16) -> float:
    """Mean foreground Dice of ``segmenter`` on validation tensors (inside their ROI), predicted as the test images are."""
    fg = foreground_classes(segmenter.info.classes, segmenter.info.encoding)
    logits = segmenter.logits(val.images, batch_size)
    pred = harden_logits(logits, segmenter.info.encoding)
    return float(dice_per_image(pred, val.labels, fg, val.roi).mean())


def train_segmenter(
    segmenter: Segmenter,
    sources: Sequence[tuple[SegmentationTensors, float]],
    val: SegmentationTensors | None,
    settings: TrainSettings,
    device: torch.device | str = "cpu",
) -> TrainResult:
    """Train ``segmenter`` in place for ``settings.steps`` steps; keep the best validated state.

    ``sources`` pairs each data source with its share of every batch (``[(real, 1.0)]``;
    ``[(real, 0.5), (synthetic, 0.5)]`` for ``mix``).
    """
    device = torch.device(device)
    distributed.init_from_env()
    rank, world = distributed.rank(), distributed.world_size()
    torch.manual_seed(settings.seed)
    sources = [(s, w) for s, w in sources if w > 0]
    counts = shares_to_counts([w for _, w in sources], settings.batch_size)
    generator = torch.Generator().manual_seed(settings.seed * 1000 + rank)
    segmenter.to(device)
    model = segmenter.model
    train_model: torch.nn.Module = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, total_steps=max(settings.steps, 1), pct_start=0.1)
    eval_every = settings.eval_every or max(1, settings.steps // 10)
    encoding = segmenter.info.encoding
    size, window = segmenter.info.size, segmenter.info.window
    foreground = foreground_classes(segmenter.info.classes, encoding)

    best_state: dict[str, torch.Tensor] | None = None
    best_dice, best_step, loss_value = None, 0, float("nan")
    history: list[dict[str, float]] = []
    started = time.monotonic()
    reporter = settings.reporter if settings.show_progress and rank == 0 else settings.reporter.without_progress()
    with reporter.task(settings.description, settings.steps, details=True) as progress:
        for step in range(1, settings.steps + 1):
            model.train()
            parts = []
            for (source, _), n in zip(sources, counts):
                if n:
                    parts.append(at_size(source.subset(torch.randint(len(source), (n,), generator=generator)), size, encoding))
            if window is not None and any(p.patches for p in parts):  # patches are smaller than the squares: crop each source
                parts = [random_crops(p, window, generator, foreground) for p in parts]
            batch = SegmentationTensors.concat(parts)
            if window is not None:
                batch = random_crops(batch, window, generator, foreground)
            images, labels, roi = batch.images, batch.labels, batch.roi
            if settings.augmentation is not None:
                images, labels, roi = settings.augmentation(images, labels, roi, generator)
            logits = padded_forward(train_model, images.to(device))
            loss = segmentation_loss(logits, labels.to(device), encoding)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_value = float(loss.detach())
            if val is not None and (step % eval_every == 0 or step == settings.steps):
                dice = validation_dice(segmenter, val)
                history.append({"step": step, "loss": loss_value, "val_dice": dice})
                if best_dice is None or dice > best_dice:
                    best_dice, best_step = dice, step
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            shown = f"loss {loss_value:.3f}" + (f"  val Dice {best_dice:.3f}" if best_dice is not None else "")
            progress.update(step, details=shown)
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_step = settings.steps
    return TrainResult(best_step, best_dice, loss_value, time.monotonic() - started, history)
