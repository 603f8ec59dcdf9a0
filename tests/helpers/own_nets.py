"""Networks written the way users write them (no zerosum base class), importable by class path."""

from __future__ import annotations

import torch
from torch import nn


class MLPWithFc(nn.Module):
    """Flat MLP with a linear ``fc``: features are the input of ``fc``."""

    def __init__(self, num_classes: int, in_features: int = 64, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


class ConvWithClassifier(nn.Module):
    """torchvision's layout: a conv trunk *module* named ``features`` and ``classifier = Sequential(
    Dropout, Linear)``; takes ``in_channels`` and ``num_classes`` like zerosum's nets."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 6):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class FeaturesNoDim(nn.Module):
    """Has a ``features`` method but declares no ``feature_dim`` and has no head attribute."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 5, 3, padding=1)
        self.out = nn.Linear(5 * 4, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.conv(x), 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class Encoder(nn.Module):
    """An encoder with no head: ``forward`` is the representation ``(B, 12)``."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 12, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
