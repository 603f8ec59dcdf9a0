"""A small CNN for fast CPU runs (two conv blocks, global pooling)."""

from __future__ import annotations

from torch import nn

from zerosum.nets.base import FeatureClassifier


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallCNN(FeatureClassifier):
    """``[conv-bn-relu x2, maxpool] x2``, global average pool, ``dropout``, linear head.
    Works for any input size >= 4 px; ``width`` channels in the first block, ``2*width`` after."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32, dropout: float = 0.0):
        super().__init__()
        self.backbone = nn.Sequential(
            conv_bn_relu(in_channels, width), conv_bn_relu(width, width), nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width), conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self._make_head(2 * width, num_classes, dropout)
