"""Build a classifier by name, so configs write ``net: resnet18_cifar`` and the data's number of
classes and channels are linked in by the CLI (never written twice)."""

from __future__ import annotations

from typing import Callable

from zerosum.nets.base import FeatureClassifier
from zerosum.nets.preact_resnet import preact_resnet18
from zerosum.nets.resnet_cifar import resnet18_cifar, resnet34_cifar
from zerosum.nets.small_cnn import SmallCNN
from zerosum.nets.torchvision_net import TorchvisionNet
from zerosum.nets.vgg import VGG16BN

NETS: dict[str, Callable[..., FeatureClassifier]] = {
    "small_cnn": SmallCNN,
    "resnet18_cifar": resnet18_cifar,
    "resnet34_cifar": resnet34_cifar,
    "vgg16_bn": VGG16BN,
    "preact_resnet18": preact_resnet18,
}


def register_net(name: str, builder: Callable[..., FeatureClassifier]) -> None:
    NETS[name] = builder


def build_net(name: str, num_classes: int, in_channels: int = 3, **kwargs) -> FeatureClassifier:
    """``name`` is a key of :data:`NETS` or ``torchvision.<arch>`` (e.g. ``torchvision.resnet50``)."""
    if name.startswith("torchvision."):
        return TorchvisionNet(name.split(".", 1)[1], num_classes, in_channels, **kwargs)
    if name not in NETS:
        raise ValueError(f"unknown net {name!r}; choose one of {sorted(NETS)} or 'torchvision.<arch>'")
    return NETS[name](num_classes=num_classes, in_channels=in_channels, **kwargs)
