"""CAAT's meta-net (Zhou et al. 2023, Sec. 5): per-sample training dynamics -> combination weights.

``(a_i, b_i) = softmax(MLP(BN(zeta_i)) / T)``: ``a_i`` weights the sample's clean + adversarial terms,
``b_i`` its anti-adversarial term (Eq. 10). A low temperature ``T`` makes the choice nearly binary
(adversary or anti-adversary for each sample) while keeping it differentiable for the meta step.
"""

from __future__ import annotations

import torch
from torch import nn


class MetaNet(nn.Module):
    """``BatchNorm1d(in) -> Linear(in, hidden) -> ReLU -> Linear(hidden, out) -> softmax(. / T)``.

    Args:
        in_features: size of zeta_i (6 for :func:`zerosum.modules.caat_features.sample_features`).
        hidden: hidden units (100 in the paper).
        out_features: number of weights per sample (2: adversary, anti-adversary).
        temperature: softmax temperature T > 0.
    """

    def __init__(self, in_features: int = 6, hidden: int = 100, out_features: int = 2, temperature: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if min(in_features, hidden, out_features) <= 0:
            raise ValueError("in_features, hidden and out_features must be positive")
        self.temperature = temperature
        self.mlp = nn.Sequential(nn.BatchNorm1d(in_features), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_features))

    def forward(self, zeta: torch.Tensor) -> torch.Tensor:
        """``(B, in_features) -> (B, out_features)`` rows on the simplex."""
        return torch.softmax(self.mlp(zeta) / self.temperature, dim=1)
