"""BYOL's regression loss (Grill et al. 2020, Eq. 2): 2 - 2 cos(p, z_target), target detached."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BYOLLoss(nn.Module):
    """``mean_i (2 - 2 * cos(p_i, z_i))`` where ``z`` is the target network's projection (no gradient
    flows into it), i.e. the squared distance of the l2-normalised vectors."""

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if p.shape != z.shape:
            raise ValueError(f"BYOLLoss expects equal shapes, got {tuple(p.shape)} and {tuple(z.shape)}")
        return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()
