"""Datamodules over torchvision's datasets (real loaders, ``download=True`` by default)."""

from __future__ import annotations

from typing import Callable, Optional

from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets

from zerosum.datamodules.indexed import IndexedDataset
from zerosum.datamodules.vision import VisionDataModule

_HINT = "Place the files torchvision expects for {cls} under that root, or run once with download=True on a machine with internet access."


class CIFAR10DataModule(VisionDataModule):
    name = "CIFAR10"
    num_classes = 10
    image_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    placement_hint = _HINT.format(cls="torchvision.datasets.CIFAR10 (root/cifar-10-batches-py)")
    dataset_class = datasets.CIFAR10

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        return self.dataset_class(self.root, train=split == "train", transform=transform, download=self.download)


class CIFAR100DataModule(CIFAR10DataModule):
    name = "CIFAR100"
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    placement_hint = _HINT.format(cls="torchvision.datasets.CIFAR100 (root/cifar-100-python)")
    dataset_class = datasets.CIFAR100


class MNISTDataModule(CIFAR10DataModule):
    name = "MNIST"
    image_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    flip = False
    placement_hint = _HINT.format(cls="torchvision.datasets.MNIST (root/MNIST/raw)")
    dataset_class = datasets.MNIST


class FashionMNISTDataModule(MNISTDataModule):
    name = "FashionMNIST"
    mean = (0.2860,)
    std = (0.3530,)
    placement_hint = _HINT.format(cls="torchvision.datasets.FashionMNIST (root/FashionMNIST/raw)")
    dataset_class = datasets.FashionMNIST


class SVHNDataModule(VisionDataModule):
    name = "SVHN"
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)
    flip = False
    placement_hint = _HINT.format(cls="torchvision.datasets.SVHN (root/train_32x32.mat, root/test_32x32.mat)")

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        return datasets.SVHN(self.root, split=split, transform=transform, download=self.download)


class STL10DataModule(VisionDataModule):
    """STL-10 at 96 px. ``unlabeled=True`` appends the 100k unlabeled images (label -1) to the
    training split, as self-supervised methods use it; the validation split is carved from the
    labeled part only. Further arguments are :class:`VisionDataModule`'s.

    Args:
        unlabeled: append the 100k unlabeled images (label -1) to the training split.
    """

    name = "STL10"
    image_shape = (3, 96, 96)
    mean = (0.4467, 0.4398, 0.4066)
    std = (0.2603, 0.2566, 0.2713)
    placement_hint = _HINT.format(cls="torchvision.datasets.STL10 (root/stl10_binary)")

    def __init__(self, *args, unlabeled: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.unlabeled = unlabeled

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        return datasets.STL10(self.root, split=split, transform=transform, download=self.download)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        super().setup(stage)
        if self.unlabeled:
            extra = self._load("unlabeled", self.train_transform)
            labeled = self.train_set.dataset
            self.train_set = IndexedDataset(ConcatDataset([labeled, extra]))
            extra_eval = self._load("unlabeled", self.eval_transform)
            self.train_set_eval = IndexedDataset(ConcatDataset([self.train_set_eval.dataset, extra_eval]))


__all__ = [
    "CIFAR10DataModule", "CIFAR100DataModule", "MNISTDataModule", "FashionMNISTDataModule",
    "SVHNDataModule", "STL10DataModule",
]
