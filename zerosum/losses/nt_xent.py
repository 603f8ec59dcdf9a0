"""NT-Xent, the normalised-temperature cross-entropy of SimCLR (Chen et al. 2020, Eq. 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class NTXentLoss(nn.Module):
    """For a batch of positive pairs ``(z1[i], z2[i])``, each of the ``2B`` embeddings is classified
    against the ``2B - 1`` others by cosine similarity / ``temperature``; the positive is its pair:

        l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t),   loss = mean over all 2B anchors.

    In DDP, ``gather=True`` would need equal batches; zerosum keeps the per-rank loss (as the ADIOS
    reference code does), so negatives are the rank's own batch.
    """

    def __init__(self, temperature: float = 0.2):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"NTXentLoss expects two B x D tensors of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
        b = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        logits = z @ z.t() / self.temperature
        logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
        targets = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
        return F.cross_entropy(logits, targets)
