"""torchvision's classification models under zerosum's features/head convention."""

from __future__ import annotations

from torch import nn
from torchvision import models

from zerosum.nets.base import FeatureClassifier


class TorchvisionNet(FeatureClassifier):
    """``torchvision.models.<arch>`` (e.g. ``resnet18``, ``resnet50``) with its final linear layer
    split off as ``head``. Weights are random: this workplace has no model hub."""

    def __init__(self, arch: str, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if not hasattr(models, arch):
            raise ValueError(f"unknown torchvision architecture {arch!r}")
        net = getattr(models, arch)(weights=None)
        if in_channels != 3 and hasattr(net, "conv1"):
            old = net.conv1
            net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        if hasattr(net, "fc"):
            dim, net.fc = net.fc.in_features, nn.Identity()
        else:
            raise ValueError(f"torchvision architecture {arch!r} has no .fc layer to split off")
        self.backbone = net
        self._make_head(dim, num_classes, dropout)
