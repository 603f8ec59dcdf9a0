"""CIFAR-style ResNets (He et al. 2016): 3x3 stem, no max-pool, four stages of basic blocks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from zerosum.nets.base import FeatureClassifier


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(FeatureClassifier):
    """``blocks`` basic blocks per stage, widths ``width * (1, 2, 4, 8)``; feature_dim = 8 * width."""

    def __init__(self, num_classes: int, in_channels: int = 3, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 width: int = 64, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c_in = width
        for stage, n in enumerate(blocks):
            c_out = width * 2**stage
            for i in range(n):
                layers.append(BasicBlock(c_in, c_out, stride=2 if (i == 0 and stage > 0) else 1))
                c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.backbone = nn.Sequential(*layers)
        self._make_head(c_in, num_classes, dropout)


def resnet18_cifar(num_classes: int, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(num_classes, in_channels, blocks=(2, 2, 2, 2), **kwargs)


def resnet34_cifar(num_classes: int, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(num_classes, in_channels, blocks=(3, 4, 6, 3), **kwargs)
