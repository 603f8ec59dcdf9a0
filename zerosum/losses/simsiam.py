"""SimSiam's loss (Chen & He 2021, Eq. 1 with the stop-gradient of Eq. 3): -cos(p, stopgrad(z))."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SimSiamLoss(nn.Module):
    """``D(p, z) = -mean_i cos(p_i, stopgrad(z_i))``; symmetrise by calling it on both pairs."""

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if p.shape != z.shape:
            raise ValueError(f"SimSiamLoss expects equal shapes, got {tuple(p.shape)} and {tuple(z.shape)}")
        return -F.cosine_similarity(p, z.detach(), dim=-1).mean()
