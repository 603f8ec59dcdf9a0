"""The predict-time data of dataset construction (Ilyas et al. 2019, :mod:`zerosum.construct`): a
split of a datamodule served one *shard* per predict batch, so that each shard is computed and
written by exactly one rank (Lightning's predict uses an unrepeated distributed sampler) and a rerun
can skip shards already on disk."""

from __future__ import annotations

from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset

from zerosum.datamodules.vision import VisionDataModule
from zerosum.datamodules.wrapped import WrappedDataModule

SPLITS = ("train", "val", "test")


class ShardDataset(Dataset):
    """Item ``k`` is shard ``k`` of ``dataset``: ``{"shard": k, "x": (n, C, H, W), "y": (n,), "index": (n,)}``
    for the positions ``[k * shard_size, (k + 1) * shard_size)``."""

    def __init__(self, dataset: Dataset, shard_size: int):
        if shard_size < 1:
            raise ValueError(f"shard_size: {shard_size}; allowed: an integer >= 1")
        self.dataset, self.shard_size = dataset, shard_size

    @property
    def num_samples(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def images(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at dataset positions ``indices``."""
        items = [self.dataset[int(i)] for i in indices]
        return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])

    def __getitem__(self, k: int) -> dict:
        if not 0 <= k < len(self):
            raise IndexError(k)
        index = torch.arange(k * self.shard_size, min((k + 1) * self.shard_size, self.num_samples))
        x, y = self.images(index)
        return {"shard": k, "x": x, "y": y, "index": index}


class ConstructionData(WrappedDataModule):
    """Wraps a :class:`~zerosum.datamodules.VisionDataModule`: ``predict`` yields shards of ``split``
    (``train`` = the training samples with evaluation transforms, i.e. no augmentation).

    Args:
        data: the source datamodule; must use ``normalize: false`` (construction works in pixels).
        split: "train" (the paper), "val" or "test".
        shard_size: samples per shard (one shard = one predict batch = one file).
        num_workers: workers of the predict loader.
    """

    def __init__(self, data: VisionDataModule, split: str = "train", shard_size: int = 1000, num_workers: int = 0):
        super().__init__(data)
        if split not in SPLITS:
            raise ValueError(f"split: {split!r}; allowed: {', '.join(SPLITS)}")
        if getattr(data, "normalize", False):
            raise ValueError("data: normalize is true, but construction works in [0, 1] pixels; allowed: the wrapped "
                             "datamodule with normalize: false")
        self.split, self.shard_size, self.num_workers = split, shard_size, num_workers
        self.shards: Optional[ShardDataset] = None

    def setup(self, stage: Optional[str] = None) -> None:
        super().setup("fit")  # every split exists after the wrapped datamodule's fit setup
        dataset = {"train": self.data.train_set_eval, "val": self.data.val_set, "test": self.data.test_set}[self.split]
        self.shards = ShardDataset(dataset, self.shard_size)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.shards, batch_size=None, shuffle=False, num_workers=self.num_workers)
