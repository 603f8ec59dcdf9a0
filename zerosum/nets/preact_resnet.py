"""Pre-activation ResNet-18 (He et al. 2016, "Identity mappings in deep residual networks"): the
network of CAAT's CIFAR experiments (and of most adversarial-training papers)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from zerosum.nets.base import FeatureClassifier


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the shortcut taps the first pre-activation when it needs a projection."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(FeatureClassifier):
    """3x3 stem, four stages of pre-activation blocks (widths ``width * (1, 2, 4, 8)``), final
    BN-ReLU, global average pooling; ``feature_dim = 8 * width``."""

    def __init__(self, num_classes: int, in_channels: int = 3, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 width: int = 64, dropout: float = 0.0):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)]
        c_in = width
        for stage, n in enumerate(blocks):
            c_out = width * 2**stage
            for i in range(n):
                layers.append(PreActBlock(c_in, c_out, stride=2 if (i == 0 and stage > 0) else 1))
                c_in = c_out
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.backbone = nn.Sequential(*layers)
        self._make_head(c_in, num_classes, dropout)


def preact_resnet18(num_classes: int, in_channels: int = 3, **kwargs) -> PreActResNet:
    return PreActResNet(num_classes, in_channels, blocks=(2, 2, 2, 2), **kwargs)
