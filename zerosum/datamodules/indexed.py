"""Datasets that yield ``(x, y, index)``: the one way zerosum passes a sample's identity along.

Active-learning pools, per-sample weights (CAAT) and constructed datasets all need to know *which*
sample a batch row is. Every split of every zerosum datamodule is wrapped here, so a batch is always
``(x, y, idx)``; modules unpack ``x, y = batch[0], batch[1]`` and therefore also accept plain
``(x, y)`` batches from a user's own datamodule.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset


class IndexedDataset(Dataset):
    """Wraps a dataset of ``(x, y)`` and returns ``(x, y, i)`` where ``i`` is the position in it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return x, y, index


class TensorImageDataset(Dataset):
    """In-memory images (``uint8`` tensor ``N x C x H x W``) and integer labels, with a transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Optional[Callable] = None):
        if images.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        x = self.images[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])


class Subset(Dataset):
    """A view of ``dataset`` at ``indices`` that keeps ``targets`` readable without loading images."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = torch.as_tensor(indices, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    @property
    def targets(self) -> torch.Tensor:
        return dataset_targets(self.dataset)[self.indices]


def dataset_targets(dataset: Dataset) -> torch.Tensor:
    """Labels of a dataset as a long tensor, read from metadata when the dataset has it."""
    if isinstance(dataset, IndexedDataset):
        return dataset_targets(dataset.dataset)
    if isinstance(dataset, Subset):
        return dataset.targets
    for name in ("targets", "labels"):
        labels = getattr(dataset, name, None)
        if labels is not None:
            return torch.as_tensor(labels, dtype=torch.long)
    if hasattr(dataset, "samples"):  # ImageFolder
        return torch.as_tensor([s[1] for s in dataset.samples], dtype=torch.long)
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)
