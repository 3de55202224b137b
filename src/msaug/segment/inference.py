"""Running a segmentation network on whole images: padding to its stride, sliding windows.

Segmenters that train on patches of full-resolution images (DRIVE: 128 px crops of a 584 px
square) predict whole images by sliding a window of the patch size over them and blending the
overlapping windows with a Gaussian weight that trusts each window's centre more than its
border (MONAI's ``sliding_window_inference``, the reference implementation). Native squares are
rarely a multiple of the encoder's stride (584 is not a multiple of 32), so every forward pass
pads its input with zeros to the next multiple and crops the logits back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msaug.segment.models import input_divisor


def padded_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, K, H, W]`` of ``images`` of any size ``[B, C, H, W]``.

    The input is zero padded at the bottom and right to a multiple of the encoder's output
    stride (black, like the outside of a fundus photograph or a padded radiograph) and the
    logits are cropped back to ``H x W``, so no pixel is resampled.
    """
    divisor = input_divisor(getattr(model, "module", model))
    h, w = images.shape[-2:]
    pad_h, pad_w = -h % divisor, -w % divisor
    if not pad_h and not pad_w:
        return model(images)
    logits = model(F.pad(images, (0, pad_w, 0, pad_h)))
    return logits[..., :h, :w]


def sliding_window_logits(
    model: nn.Module, images: torch.Tensor, window: int, overlap: float = 0.25, batch_size: int = 16
) -> torch.Tensor:
    """Logits of whole images from overlapping ``window`` x ``window`` windows, Gaussian-weighted.

    Neighbouring windows overlap by ``overlap`` of their side; images smaller than the window
    are padded to it and cropped back. Windows are run ``batch_size`` at a time.
    """
    from monai.inferers import sliding_window_inference

    logits = sliding_window_inference(
        images, roi_size=(window, window), sw_batch_size=batch_size, predictor=lambda x: padded_forward(model, x),
        overlap=overlap, mode="gaussian",
    )
    assert isinstance(logits, torch.Tensor)
    return logits.as_subclass(torch.Tensor)
