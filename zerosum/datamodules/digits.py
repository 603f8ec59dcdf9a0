"""scikit-learn's bundled handwritten digits (1797 images, 8x8): the embedded default data."""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from zerosum.datamodules.indexed import Subset, TensorImageDataset
from zerosum.datamodules.vision import VisionDataModule


def load_digits_tensors(image_size: int = 8, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as a ``uint8`` tensor ``N x channels x image_size x image_size`` and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, channels, -1, -1).contiguous()
    return images, torch.as_tensor(digits.target, dtype=torch.long)


class DigitsDataModule(VisionDataModule):
    """Digits, optionally resized (e.g. to 32) and repeated to 3 channels for CIFAR-shaped nets.

    The data has no official test split: a seeded ``test_size`` split is held out first, then the
    validation split is carved from the rest. Augmentation is off by default (8x8 digits). Further
    arguments are :class:`VisionDataModule`'s.

    Args:
        image_size: side in pixels (8 is the original; e.g. 32 for CIFAR-shaped networks).
        channels: 1 (grayscale) or 3 (repeated, for 3-channel networks).
        test_size: held-out test split: a fraction in (0, 1) or a count.
        augment: random crops (off by default).
        download: unused (the data ships with scikit-learn).
    """

    name = "Digits"
    num_classes = 10
    flip = False

    def __init__(
        self, *args, image_size: int = 8, channels: int = 1, test_size: Union[float, int] = 0.2,
        augment: bool = False, download: bool = False, **kwargs,
    ):
        if channels not in (1, 3):
            raise ValueError(f"channels: got {channels}; allowed: 1 or 3")
        if image_size < 1:
            raise ValueError(f"image_size: got {image_size}; allowed: an int >= 1 (8 is the original)")
        super().__init__(*args, augment=augment, download=download, **kwargs)
        self.image_shape = (channels, image_size, image_size)
        self.test_size = test_size
        self.mean = (0.3063,) * channels
        self.std = (0.3853,) * channels
        self._tensors: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def prepare_data(self) -> None:
        pass

    def _official_split(self, split: str) -> torch.Tensor:
        n = 1797
        n_test = int(round(self.test_size * n)) if self.test_size < 1 else int(self.test_size)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(10_000 + self.seed))
        return (perm[n_test:] if split == "train" else perm[:n_test]).sort().values

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        if self._tensors is None:
            self._tensors = load_digits_tensors(self.image_size, self.in_channels)
        images, labels = self._tensors
        return Subset(TensorImageDataset(images, labels, transform), self._official_split(split))
