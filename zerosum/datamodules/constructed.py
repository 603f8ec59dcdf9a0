"""Training on a constructed dataset (D_R, D_NR, D_rand, D_det of Ilyas et al.) and testing on the
original data.

The shards written by :class:`zerosum.construct.ShardWriter` are the training split; validation and
test come from the original datamodule ``data`` (the paper evaluates on the unmodified test set),
whose facts (classes, shape, statistics) are forwarded so the CLI links them as usual.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from zerosum.datamodules.indexed import IndexedDataset
from zerosum.datamodules.vision import DataNotFoundError, VisionDataModule
from zerosum.datamodules.wrapped import WrappedDataModule

MANIFEST = "manifest.json"


class ConstructedImages(Dataset):
    """Images (float in [0, 1] or uint8) and labels from shards, with an optional transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i]
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])


def load_constructed(path: str, allow_incomplete: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """All shards under ``path`` (in shard order): images, labels and the manifest."""
    root = Path(path)
    if not (root / MANIFEST).exists():
        raise DataNotFoundError(f"no constructed dataset at {root}: {MANIFEST} missing. Build it first with "
                                f"`zerosum predict --config configs/robust/<...>_construct_<kind>.yaml`")
    manifest = json.loads((root / MANIFEST).read_text())
    if not manifest.get("complete", False) and not allow_incomplete:
        raise DataNotFoundError(f"constructed dataset at {root} is incomplete ({len(manifest['shards'])} of "
                                f"{manifest['num_shards']} shards); rerun the construction to resume it, "
                                "or set allow_incomplete: true")
    images, labels = [], []
    for shard in manifest["shards"]:
        data = torch.load(root / shard["file"], weights_only=False)
        images.append(data["images"])
        labels.append(data["labels"])
    return torch.cat(images), torch.cat(labels).long(), manifest


class ConstructedDataModule(WrappedDataModule):
    """Train on the shards at ``path``; validate and test on ``data``'s val / test splits.

    Args:
        path: folder with ``manifest.json`` and ``shard_*.pt``.
        data: the original datamodule (normalize: false, like the constructed images).
        batch_size / num_workers: for the constructed training set (val/test use ``data``'s loaders).
        augment: random crop (padding size/8, reflect) and horizontal flip, as in the paper's training.
        allow_incomplete: train on the shards present even if construction has not finished.
    """

    #: the constructed training set's own batch size: a plain attribute, not the wrapped datamodule's
    batch_size: int = 128

    def __init__(self, path: str, data: VisionDataModule, batch_size: int = 128, num_workers: int = 0,
                 augment: bool = True, allow_incomplete: bool = False):
        super().__init__(data)
        if getattr(data, "normalize", False):
            raise ValueError("ConstructedDataModule: constructed images are [0, 1] pixels; set data's normalize: false")
        self.path, self.batch_size, self.num_workers = path, batch_size, num_workers
        self.augment, self.allow_incomplete = augment, allow_incomplete
        self.normalize = False
        self.train_set: Optional[Dataset] = None
        self.manifest: dict = {}

    def train_transform(self):
        if not self.augment:
            return None
        steps = [v2.RandomCrop(self.image_size, padding=self.image_size // 8, padding_mode="reflect")]
        if getattr(self.data, "flip", True):
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose(steps)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        images, labels, self.manifest = load_constructed(self.path, self.allow_incomplete)
        if tuple(images.shape[1:]) != tuple(self.data.image_shape):
            raise ValueError(f"constructed images have shape {tuple(images.shape[1:])} but data has "
                             f"{tuple(self.data.image_shape)}")
        self.train_set = IndexedDataset(ConstructedImages(images, labels, self.train_transform()))
        super().setup(stage)
        self.val_set, self.test_set = self.data.val_set, self.data.test_set

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          drop_last=len(self.train_set) > self.batch_size, persistent_workers=self.num_workers > 0)
