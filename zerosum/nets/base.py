"""The one convention for classifiers in zerosum.

A :class:`FeatureClassifier` splits into ``features(x) -> (B, feature_dim)`` (the penultimate
representation: active learning, core-set, representation inversion and SRAL's state read it) and a
linear ``head``; ``forward(x) = head(features(x))`` returns logits.
"""

from __future__ import annotations

import torch
from torch import nn


class FeatureClassifier(nn.Module):
    """Base class: subclasses build ``self.backbone`` (image -> flat features) and call
    :meth:`_make_head`."""

    feature_dim: int
    backbone: nn.Module

    def _make_head(self, feature_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        self.feature_dim = feature_dim
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))
