"""Critic Q(S, a; theta_c) of SRAL (Jiu et al. 2026, Eqs. 3-6; section 4.1: 5 fully connected layers)."""

from __future__ import annotations

import torch
from torch import nn

from zerosum.rl.actor import mlp


class Critic(nn.Module):
    """``Q(S, a)``: the flattened ``(B, n, d)`` state concatenated with the ``(B, n)`` actions, through
    ``depth`` (5) linear layers with ReLU, to one value per state-action pair ``(B,)``."""

    def __init__(self, n: int, d: int, hidden: int = 256, depth: int = 5):
        super().__init__()
        if depth < 2:
            raise ValueError(f"critic depth must be >= 2 linear layers, got {depth}")
        self.n, self.d = n, d
        self.net = mlp([n * d + n] + [hidden] * (depth - 1) + [1])

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state.flatten(1), action.flatten(1)], dim=1)).squeeze(1)
