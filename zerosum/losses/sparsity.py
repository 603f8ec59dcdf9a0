"""ADIOS's regularisers of the occlusion model (Shi et al. 2022, Sec. 3: the sparsity penalty of the
occlusion objective; the official code's ``alpha_entropy`` term)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from zerosum.masks.diagnostics import coverage


class MaskSparsityPenalty(nn.Module):
    """``R = alpha * sum_n mean_b 1 / (sin(pi * m_bn) + eps)`` where ``m_bn`` in [0, 1] is the fraction
    of sample ``b``'s pixels covered by mask ``n``. It is smallest (``alpha * N``) at half coverage and
    grows without bound as a mask empties or covers the whole image, so the occluder can neither
    drop a mask nor black out the image."""

    def __init__(self, alpha: float = 1.0, eps: float = 1e-10):
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha: {alpha}; allowed: >= 0 (the sparsity weight)")
        self.alpha, self.eps = alpha, eps

    @staticmethod
    def coverage(masks: torch.Tensor) -> torch.Tensor:
        """``B x N x H x W`` masks -> ``B x N`` occluded fractions."""
        return coverage(masks)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        m = self.coverage(masks)
        return self.alpha * (1.0 / (torch.sin(math.pi * m) + self.eps)).mean(dim=0).sum()


class CoverageNegentropy(nn.Module):
    """The official ``alpha_entropy`` term: ``alpha_entropy * sum_b sum_n p_bn log p_bn`` with
    ``p_b = softmax_n(coverage_b)`` over all masks of sample ``b`` (both views' masks for SimSiam),
    summed (not averaged) over the batch as there. The occluder *maximises* it together with the SSL
    loss, i.e. it lowers the entropy of the softmax of its coverages; 0 turns it off (most official
    scripts; ImageNet100-S SimCLR and SimSiam use it)."""

    def __init__(self, alpha_entropy: float = 0.0):
        super().__init__()
        if alpha_entropy < 0:
            raise ValueError(f"alpha_entropy: {alpha_entropy}; allowed: >= 0")
        self.alpha_entropy = alpha_entropy

    def forward(self, *mask_sets: torch.Tensor) -> torch.Tensor:
        cov = torch.cat([coverage(m) for m in mask_sets], dim=1)
        return self.alpha_entropy * (F.softmax(cov, dim=1) * F.log_softmax(cov, dim=1)).sum()
