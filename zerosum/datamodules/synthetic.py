"""Synthetic, learnable class-conditional images for tests: each class is a fixed random prototype
plus Gaussian noise. Small, deterministic, no files."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import Dataset

from zerosum.datamodules.indexed import TensorImageDataset
from zerosum.datamodules.vision import VisionDataModule


def make_synthetic(num_samples: int, num_classes: int, shape: tuple[int, int, int], noise: float,
                   seed: int, sample_seed: int = 0):
    """``uint8`` images around per-class prototypes (fixed by ``seed``) and balanced labels; the
    noise and order are drawn from ``sample_seed`` (train and test differ only there)."""
    prototypes = torch.rand(num_classes, *shape, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(sample_seed + 1)
    labels = torch.arange(num_samples) % num_classes
    labels = labels[torch.randperm(num_samples, generator=g)]
    images = prototypes[labels] + noise * torch.randn(num_samples, *shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


class SyntheticDataModule(VisionDataModule):
    """``num_train`` training and ``num_test`` test samples of ``num_classes`` prototype classes.
    Further arguments are :class:`VisionDataModule`'s.

    Args:
        num_train: training samples (the validation split is carved from them).
        num_test: test samples.
        num_classes: number of classes (prototypes).
        image_size: side in pixels.
        channels: image channels.
        noise: standard deviation of the Gaussian noise around each prototype (pixels in [0, 1]).
        augment: random crops (off by default).
        download: unused (generated data).
    """

    name = "Synthetic"
    flip = False

    def __init__(
        self, *args, num_train: int = 256, num_test: int = 64, num_classes: int = 4, image_size: int = 8,
        channels: int = 1, noise: float = 0.2, augment: bool = False, download: bool = False, **kwargs,
    ):
        super().__init__(*args, augment=augment, download=download, **kwargs)
        self.num_classes = num_classes
        self.image_shape = (channels, image_size, image_size)
        self.mean, self.std = (0.5,) * channels, (0.3,) * channels
        self.num_train, self.num_test, self.noise = num_train, num_test, noise

    def prepare_data(self) -> None:
        pass

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        n = self.num_train if split == "train" else self.num_test
        images, labels = make_synthetic(n, self.num_classes, self.image_shape, self.noise,
                                        seed=self.seed, sample_seed=0 if split == "train" else 1)
        return TensorImageDataset(images, labels, transform)
