"""Critic Q(S, a; theta_c) of SRAL (Jiu et al. 2026, Eqs. 3-6; section 4.1: 5 fully connected layers)."""

from __future__ import annotations

import torch
from torch import nn

from zerosum.rl.actor import mlp, with_group_context


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


class SharedCritic(nn.Module):
    """``Q(S, a) = sum_i q(s_i, mean(S), a_i)``: one MLP values every candidate's action from its
    features and the group's mean, and the group's value is the sum (a reward that adds up over the
    picks, as an accuracy change roughly does). The partner of :class:`~zerosum.rl.actor.SharedActor`
    (``critic: shared``)."""

    def __init__(self, n: int, d: int, hidden: int = 256, depth: int = 3):
        super().__init__()
        if depth < 2:
            raise ValueError(f"critic depth must be >= 2 linear layers, got {depth}")
        self.n, self.d = n, d
        self.net = mlp([2 * d + 1] + [hidden] * (depth - 1) + [1])

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([with_group_context(state), action.unsqueeze(-1)], dim=-1)
        return self.net(x).squeeze(-1).sum(1)


CRITICS = {"mlp": Critic, "shared": SharedCritic}


def build_critic(name: str, n: int, d: int, **kwargs) -> nn.Module:
    if name not in CRITICS:
        raise ValueError(f"critic: unknown critic {name!r}; allowed: {', '.join(sorted(CRITICS))}")
    return CRITICS[name](n=n, d=d, **kwargs)
