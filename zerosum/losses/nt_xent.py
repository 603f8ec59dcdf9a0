"""NT-Xent, the normalised-temperature cross-entropy of SimCLR (Chen et al. 2020, Eq. 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from zerosum.parallel import all_gather_with_grad, world_size


class NTXentLoss(nn.Module):
    """For a batch of positive pairs ``(z1[i], z2[i])``, each of the ``2B`` embeddings is classified
    against the ``2B - 1`` others by cosine similarity / ``temperature``; the positive is its pair:

        l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t),   loss = mean over all 2B anchors.

    Multi-GPU (``gather``, on by default, in training mode): every rank's embeddings are gathered with
    gradients (:func:`zerosum.parallel.all_gather_with_grad`), each rank's ``2B`` anchors are classified
    against all ``2 B W`` embeddings of the ``W`` ranks, and the mean over ranks of the ranks' losses (what
    DDP's gradient averaging optimises) is the loss of the global batch of ``B W`` pairs on one process,
    as in SimCLR, solo-learn and lightly. The per-GPU batch size ``B`` must be equal on all ranks (the
    distributed sampler pads to that). In eval mode each rank scores its own batch (diagnostics).
    (The official ADIOS scripts train on one GPU and their loss does not gather.)
    """

    def __init__(self, temperature: float = 0.2, gather: bool = True):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature: {temperature}; allowed: > 0")
        self.temperature, self.gather = temperature, gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"NTXentLoss expects two B x D tensors of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
        b = z1.shape[0]
        local = F.normalize(torch.cat([z1, z2]), dim=1)  # 2B x D: rows i and B + i are a pair
        if self.gather and self.training and world_size() > 1:
            rank = torch.distributed.get_rank()
            every = all_gather_with_grad(local).view(-1, 2 * b, local.shape[1])  # W x 2B x D
            candidates = every.flatten(0, 1)
            offset = rank * 2 * b
        else:
            candidates, offset = local, 0
        logits = local @ candidates.t() / self.temperature
        own = torch.arange(2 * b, device=local.device)
        logits = logits.index_put((own, offset + own), logits.new_tensor(float("-inf")))  # not its own negative
        targets = offset + torch.cat([own[b:], own[:b]])
        return F.cross_entropy(logits, targets)
