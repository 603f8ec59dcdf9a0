"""Normalisation inside the model, so attacks work in [0, 1] pixels and ``eps`` means what users
expect (8/255 is 8 grey levels whatever the dataset's statistics)."""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn


class Normalized(nn.Module):
    """``Normalized(net, mean, std)(x) = net((x - mean) / std)`` with ``x`` in [0, 1].

    ``features`` and ``head`` of a :class:`zerosum.nets.FeatureClassifier` are forwarded
    (``features`` normalises first), so representation inversion also works in pixel space.
    ``mean`` / ``std`` may be per-channel sequences or None (identity).
    """

    def __init__(self, net: nn.Module, mean: Union[Sequence[float], torch.Tensor, None] = None,
                 std: Union[Sequence[float], torch.Tensor, None] = None):
        super().__init__()
        self.net = net
        mean = torch.zeros(1) if mean is None else torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.ones(1) if std is None else torch.as_tensor(std, dtype=torch.float32).flatten()
        if (std <= 0).any():
            raise ValueError(f"Normalized: std must be positive; got {std.tolist()}")
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)  # per channel (dim 1)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.normalize(x))

    @property
    def head(self) -> nn.Module:
        return self.net.head

    @property
    def feature_dim(self) -> int:
        return self.net.feature_dim
