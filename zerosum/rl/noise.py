"""Exploration noise on DDPG actions (Jiu et al. 2026 leave it unspecified).

Default (``noise: gaussian``): independent Gaussian noise ``N(0, sigma^2)`` added to each candidate's
tanh action, clipped to [-1, 1], ``sigma`` decaying geometrically per step to ``sigma_min``.
Consecutive SRAL states are different candidate groups, not a physical trajectory, so the
temporally correlated Ornstein-Uhlenbeck noise of the original DDPG has no motivation here; it is
available as ``noise: ou``. The noise state is in buffers (it travels with ``state_dict``); random
numbers come from the caller's generator, so every DDP rank can draw the same noise.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """``a + N(0, sigma^2)`` clipped to [-1, 1]; ``sigma *= decay`` after every call (floor ``sigma_min``)."""

    def __init__(self, dim: int, sigma: float = 0.3, sigma_min: float = 0.05, decay: float = 0.999):
        super().__init__()
        if sigma < 0 or sigma_min < 0 or not 0 < decay <= 1:
            raise ValueError(f"noise needs sigma, sigma_min >= 0 and decay in (0, 1]; got {sigma}, {sigma_min}, {decay}")
        self.dim, self.sigma_min, self.decay = dim, sigma_min, decay
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def forward(self, action: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        eps = torch.randn(action.shape, generator=generator).to(action)
        out = (action + float(self.sigma) * eps).clamp(-1.0, 1.0)
        self.sigma.fill_(max(float(self.sigma) * self.decay, self.sigma_min))
        return out


class OUNoise(nn.Module):
    """Ornstein-Uhlenbeck noise ``x += theta (mu - x) + sigma N(0, 1)``, added to the action and clipped."""

    def __init__(self, dim: int, theta: float = 0.15, sigma: float = 0.2, mu: float = 0.0):
        super().__init__()
        self.dim, self.theta, self.sigma_value, self.mu = dim, theta, sigma, mu
        self.register_buffer("x", torch.full((dim,), float(mu)))

    def reset(self) -> None:
        self.x.fill_(self.mu)

    def forward(self, action: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        eps = torch.randn(self.x.shape, generator=generator).to(self.x)
        self.x.add_(self.theta * (self.mu - self.x) + self.sigma_value * eps)
        return (action + self.x.to(action)).clamp(-1.0, 1.0)


NOISES: dict[str, Callable[..., nn.Module]] = {"gaussian": GaussianNoise, "ou": OUNoise}


def build_noise(name: str, dim: int, **kwargs) -> nn.Module:
    if name not in NOISES:
        raise ValueError(f"unknown exploration noise {name!r}; choose one of {sorted(NOISES)}")
    return NOISES[name](dim=dim, **kwargs)
