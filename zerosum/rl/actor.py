"""Actor networks pi(S; theta_a) of SRAL (Jiu et al., J. Graphics 2026, section 2.2 item 2).

The state ``S`` is an ``(n, d)`` matrix: the penultimate features of ``n`` candidate samples
(Eq. 1). The actor maps it to one action per candidate in ``(-1, 1)`` (tanh); an action ``>= 0``
means "select this candidate". Both networks see the whole group (the state is flattened), so a
decision can depend on the other candidates.

Two architectures, because the paper describes two, and a third for small data:
- :class:`MLPActor` (default, ``actor: mlp``): 5 fully connected layers, the structure section 4.1
  says was used in the experiments ("actor and critic share the same structure, 5 FC layers").
- :class:`ConvActor` (``actor: conv``): the description of section 2.2: 2 convolution layers and a
  pooling layer, then 3 fully connected layers and tanh. The convolutions run along the feature
  axis of each candidate (kernel ``1 x k``), the pooling shrinks the feature axis to ``pool_size``.
- :class:`SharedActor` (``actor: shared``): one small MLP applied to every candidate (its features and
  the group mean), i.e. a ``1 x d`` convolution over the state matrix carried to its end. Not the
  paper's; the flattened actor must learn the same decision once per position in the group, which a
  CPU-scale run with a few hundred transitions cannot teach it (its critic memorises the replay).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class MLPActor(nn.Module):
    """``(B, n, d) -> (B, n)`` actions in (-1, 1): 5 linear layers (``depth``), ReLU, tanh."""

    def __init__(self, n: int, d: int, hidden: int = 256, depth: int = 5):
        super().__init__()
        if depth < 2:
            raise ValueError(f"actor depth must be >= 2 linear layers, got {depth}")
        self.n, self.d = n, d
        self.net = mlp([n * d] + [hidden] * (depth - 1) + [n])

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(state.flatten(1)))


class ConvActor(nn.Module):
    """``(B, n, d) -> (B, n)``: 2 conv layers (along the feature axis) + pooling + 3 linear + tanh."""

    def __init__(self, n: int, d: int, hidden: int = 256, channels: int = 16, kernel_size: int = 5,
                 pool_size: int = 8):
        super().__init__()
        self.n, self.d = n, d
        pad = kernel_size // 2
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, (1, kernel_size), padding=(0, pad)), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, pad)), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d((n, min(pool_size, d))),
        )
        self.fc = mlp([channels * n * min(pool_size, d), hidden, hidden, n])

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(self.conv(state.unsqueeze(1)).flatten(1)))


def with_group_context(state: torch.Tensor) -> torch.Tensor:
    """``(B, n, d) -> (B, n, 2d)``: each candidate's features next to the group's mean features, so a
    per-candidate network still sees what it is compared with."""
    return torch.cat([state, state.mean(1, keepdim=True).expand_as(state)], dim=-1)


class SharedActor(nn.Module):
    """``(B, n, d) -> (B, n)``: one MLP (``depth`` linear layers, ReLU, tanh) scores every candidate from
    its own features and the group's mean. Permutation-equivariant and ``n`` times as sample-efficient
    as the flattened :class:`MLPActor` (every transition trains it on ``n`` candidates): what lets the
    agent learn from the few hundred transitions of a CPU-scale run (``actor: shared``)."""

    def __init__(self, n: int, d: int, hidden: int = 256, depth: int = 3):
        super().__init__()
        if depth < 2:
            raise ValueError(f"actor depth must be >= 2 linear layers, got {depth}")
        self.n, self.d = n, d
        self.net = mlp([2 * d] + [hidden] * (depth - 1) + [1])

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(with_group_context(state)).squeeze(-1))


ACTORS: dict[str, Callable[..., nn.Module]] = {"mlp": MLPActor, "conv": ConvActor, "shared": SharedActor}


def build_actor(name: str, n: int, d: int, **kwargs) -> nn.Module:
    if name not in ACTORS:
        raise ValueError(f"actor: unknown actor {name!r}; allowed: {', '.join(sorted(ACTORS))}")
    return ACTORS[name](n=n, d=d, **kwargs)
