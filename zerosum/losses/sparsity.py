"""ADIOS's mask sparsity penalty (Shi et al. 2022, Sec. 3: the sparsity penalty of the occlusion objective)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MaskSparsityPenalty(nn.Module):
    """``R = alpha * sum_n mean_b 1 / (sin(pi * m_bn) + eps)`` where ``m_bn`` in [0, 1] is the fraction
    of sample ``b``'s pixels covered by mask ``n``. It is smallest (``alpha * N``) at half coverage and
    grows without bound as a mask empties or covers the whole image, so the occluder can neither
    drop a mask nor black out the image."""

    def __init__(self, alpha: float = 1.0, eps: float = 1e-10):
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha (sparsity weight) must be >= 0, got {alpha}")
        self.alpha, self.eps = alpha, eps

    @staticmethod
    def coverage(masks: torch.Tensor) -> torch.Tensor:
        """``B x N x H x W`` masks -> ``B x N`` occluded fractions."""
        if masks.ndim != 4:
            raise ValueError(f"masks must be B x N x H x W, got shape {tuple(masks.shape)}")
        return masks.mean(dim=(-2, -1))

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        m = self.coverage(masks)
        return self.alpha * (1.0 / (torch.sin(math.pi * m) + self.eps)).mean(dim=0).sum()
