"""Training on a constructed dataset (D_R, D_NR, D_rand, D_det of Ilyas et al.) and testing on the
original data.

The shards written by :class:`zerosum.construct.ShardWriter` are the training split; validation and
test come from the original datamodule ``data`` (the paper evaluates on the unmodified test set),
whose facts (classes, shape, statistics) are forwarded so the CLI links them as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from zerosum.datamodules.indexed import IndexedDataset
from zerosum.datamodules.shards import MANIFEST, check_file, construction_config, read_json, rebuild_hint
from zerosum.datamodules.vision import DataNotFoundError, VisionDataModule
from zerosum.datamodules.wrapped import WrappedDataModule


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
    fields, manifest = read_constructed(path, allow_incomplete)
    return fields["images"], fields["labels"].long(), manifest


def read_constructed(path: str, allow_incomplete: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """Every per-sample field of the shards under ``path`` (``images``, ``labels``, ``orig_labels``,
    ``index``, ``target_hit``, ...), concatenated in shard order, and the manifest. Every shard is
    checked against the size and SHA-256 the manifest records; a missing, unreadable or damaged file
    is named together with how to rebuild it."""
    root = Path(path)
    manifest, why = read_json(root / MANIFEST)
    if manifest is None and why == "missing":
        raise DataNotFoundError(f"path: no constructed dataset at {root} ({MANIFEST} missing); build it first with "
                                f"`zerosum predict --config configs/robust/<...>_construct_<kind>.yaml`")
    if manifest is None or not isinstance(manifest.get("shards"), list):
        raise DataNotFoundError(f"path: {root / MANIFEST} is {why or 'unreadable (no shard list)'}; {rebuild_hint(root)}")
    if not manifest.get("complete", False) and not allow_incomplete:
        raise DataNotFoundError(f"path: the constructed dataset at {root} is incomplete ({len(manifest['shards'])} of "
                                f"{manifest.get('num_shards')} shards); {rebuild_hint(root)}, or set "
                                "allow_incomplete: true")
    parts: list[dict] = []
    for shard in manifest["shards"]:
        file = root / shard["file"]
        why = check_file(file, shard)
        if why is None:
            try:
                data = torch.load(file, weights_only=False)
            except Exception as err:  # noqa: BLE001 - any unreadable shard gets the same advice
                why = f"is unreadable ({type(err).__name__}: {err})"
        if why is not None:
            raise DataNotFoundError(f"path: shard {file} {why}; {rebuild_hint(root)}")
        parts.append({k: v for k, v in data.items() if isinstance(v, torch.Tensor) and v.dim() > 0})
    if not parts:
        raise DataNotFoundError(f"path: the constructed dataset at {root} has no shards; {rebuild_hint(root)}")
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, manifest


class ConstructedDataModule(WrappedDataModule):
    """Train on the shards at ``path``; validate and test on ``data``'s val / test splits.

    Args:
        path: folder with ``manifest.json`` and ``shard_*.pt``.
        data: the original datamodule (normalize: false, like the constructed images).
        batch_size: batch size of the constructed training set (val/test use ``data``'s loaders).
        num_workers: data-loading workers of the constructed training set.
        augment: random crop (padding size/8, reflect) and horizontal flip, as in the paper's training.
        allow_incomplete: train on the shards present even if construction has not finished.
        min_hit_rate: refuse a D_rand / D_det whose attack reached fewer of its targets (the manifest's
            ``target_hit_rate``): below it the set is mostly correctly labelled clean images, not
            non-robust features. 0 disables the check.
    """

    #: the constructed training set's own batch size: a plain attribute, not the wrapped datamodule's
    batch_size: int = 128

    def __init__(self, path: str, data: VisionDataModule, batch_size: int = 128, num_workers: int = 0,
                 augment: bool = True, allow_incomplete: bool = False, min_hit_rate: float = 0.9):
        super().__init__(data)
        if getattr(data, "normalize", False):
            raise ValueError("data: normalize is true, but constructed images are [0, 1] pixels; allowed: the wrapped "
                             "datamodule with normalize: false")
        if not 0.0 <= min_hit_rate <= 1.0:
            raise ValueError(f"min_hit_rate: {min_hit_rate}; allowed: a fraction in [0, 1] (0 disables the check)")
        self.min_hit_rate = min_hit_rate
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
        self.check_quality(self.manifest)
        if tuple(images.shape[1:]) != tuple(self.data.image_shape):
            raise ValueError(f"data: constructed images have shape {tuple(images.shape[1:])} but data has "
                             f"{tuple(self.data.image_shape)}; allowed: the datamodule the set was built from")
        self.train_set = IndexedDataset(ConstructedImages(images, labels, self.train_transform()))
        super().setup(stage)
        self.val_set, self.test_set = self.data.val_set, self.data.test_set

    def check_quality(self, manifest: dict) -> None:
        """Refuses a set whose attack missed too many targets (see ``min_hit_rate``)."""
        rate = manifest.get("stats", {}).get("target_hit_rate")
        if rate is None or rate >= self.min_hit_rate:
            return
        kind = manifest.get("settings", {}).get("kind", "constructed set")
        raise ValueError(
            f"min_hit_rate: the {kind} set at {self.path} reached only {rate:.1%} of its target classes (needs "
            f"{self.min_hit_rate:.0%}), so many of its samples still carry their true class. Rebuild it: in "
            f"{construction_config(self.path)} raise the attack's eps or steps (or train a stronger source model), "
            "point the ShardWriter at a new out_dir and rerun `zerosum predict --config <that file>`; or lower "
            "data.min_hit_rate")

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          drop_last=len(self.train_set) > self.batch_size, persistent_workers=self.num_workers > 0)
