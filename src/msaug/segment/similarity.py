"""Pairwise similarity of label maps and images, shared by label realism and the memorisation audit.

Both work on small copies (64 px by default): nearest-neighbour searches compare every
generated sample with every real one, and near-copies are still near-copies at 64 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from msaug.resize import resize_image, resize_label


def label_iou_matrix(
    a: torch.Tensor, b: torch.Tensor, foreground: list[int], encoding: str, size: int = 64, downsample: str = "area"
) -> torch.Tensor:
    """Mean foreground IoU between every map of ``a`` ``[N,K,H,W]`` and of ``b`` ``[M,K,H,W]``: ``[N, M]``.

    Maps are compared at ``size`` px, shrunk by the data's ``downsample`` policy (``max``
    for thin structures: by area, 1-px vessels would mostly vanish at 64 px). A class
    empty in both maps counts as IoU 1 (they agree that it is absent).
    """
    a = resize_label(a.float(), size, encoding, downsample)[:, foreground].flatten(2).permute(1, 0, 2)  # [K', N, P]
    b = resize_label(b.float(), size, encoding, downsample)[:, foreground].flatten(2).permute(1, 0, 2)  # [K', M, P]
    inter = torch.bmm(a, b.transpose(1, 2))
    union = a.sum(-1)[:, :, None] + b.sum(-1)[:, None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1e-9), torch.ones_like(union))
    return iou.mean(dim=0)


def _high_pass(images: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    x = resize_image(images.float(), size).mean(dim=1, keepdim=True)
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    detail = (x - blurred).flatten(1)
    detail = detail - detail.mean(dim=1, keepdim=True)
    return detail / detail.norm(dim=1, keepdim=True).clamp_min(1e-9)


def image_correlation_matrix(a: torch.Tensor, b: torch.Tensor, size: int = 64, sigma: float = 4.0) -> torch.Tensor:
    """Correlation of the fine detail of every image of ``a`` with every image of ``b``: ``[N, M]``.

    Images are reduced to grey at ``size`` px and their coarse shading (a Gaussian blur
    of ``sigma`` px) is removed first: all chest X-rays share the same coarse layout, so
    plain correlation would call any two of them similar, while a copied case also copies
    its fine texture. 1 means identical detail.
    """
    return _high_pass(a, size, sigma) @ _high_pass(b, size, sigma).T
