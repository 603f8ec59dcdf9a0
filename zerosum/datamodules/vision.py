"""The vision datamodule family: one base class, one small subclass per dataset.

Every datamodule here
- carves a seeded validation split from the official training split (the test split stays official),
- builds the training split twice, with training and with evaluation transforms (``train_set`` and
  ``train_set_eval``: active learning scores its pool without augmentation),
- yields ``(x, y, index)`` batches (see :mod:`zerosum.datamodules.indexed`),
- knows ``num_classes``, ``image_shape``, ``mean`` and ``std`` before ``setup`` so the CLI can link
  them into the model,
- and raises :class:`DataNotFoundError` naming the dataset, the root and how to place the files when
  a download fails.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from zerosum.datamodules.indexed import IndexedDataset, Subset


class DataNotFoundError(RuntimeError):
    """A dataset could not be found or downloaded."""


def default_transforms(
    mean: Sequence[float], std: Sequence[float], *, train: bool, size: int, crop_padding: int,
    flip: bool, normalize: bool,
) -> v2.Compose:
    """To-float, optional (crop, flip) augmentation, optional normalisation."""
    steps: list = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if train and crop_padding > 0:
        steps.append(v2.RandomCrop(size, padding=crop_padding, padding_mode="reflect"))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    if normalize:
        steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


class VisionDataModule(L.LightningDataModule):
    """Base class. Subclasses set the class facts and implement :meth:`load_split`.

    Args:
        root: folder holding (or receiving) the dataset files.
        batch_size: training batch size; evaluation uses ``eval_batch_size`` (default: the same).
        num_workers: dataloader workers.
        val_size: validation split carved from the training split: a fraction in (0, 1) or a count.
        seed: seed of the train/val split (independent of the training seed).
        augment: random crop (with padding) and, where it makes sense, horizontal flips.
        normalize: normalise with the dataset's ``mean``/``std``. Attack code wants ``False`` and a
            normalising model (:class:`zerosum.nets.Normalized`), so that eps is in pixel units.
        train_transform: replaces the whole default training pipeline (input: PIL image or uint8 tensor).
        eval_transform: replaces the whole default evaluation pipeline.
        download: download missing files (torchvision datasets).
        eval_batch_size: evaluation batch size (default: ``batch_size``).
        pin_memory: pinned host memory for faster copies to a GPU.
        max_train_samples: keep a seeded random subset of the training split (CPU-scale runs).
        max_test_samples: keep a seeded random subset of the test split (CPU-scale runs).
    """

    name: str = "dataset"
    num_classes: int = 10
    image_shape: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    flip: bool = True
    placement_hint: str = ""

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: Union[int, float] = 0.1,
        seed: int = 0,
        augment: bool = True,
        normalize: bool = True,
        train_transform: Optional[Callable] = None,
        eval_transform: Optional[Callable] = None,
        download: bool = True,
        eval_batch_size: Optional[int] = None,
        pin_memory: bool = False,
        max_train_samples: Optional[int] = None,
        max_test_samples: Optional[int] = None,
    ):
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size: got {batch_size}; allowed: an int >= 1 (per process)")
        if val_size < 0 or (val_size >= 1 and val_size != int(val_size)):
            raise ValueError(f"val_size: got {val_size}; allowed: a fraction in [0, 1) or a whole count >= 1")
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.seed = seed
        self.augment = augment
        self.normalize = normalize
        self.download = download
        self.pin_memory = pin_memory
        self.max_train_samples, self.max_test_samples = max_train_samples, max_test_samples
        self._train_transform = train_transform
        self._eval_transform = eval_transform
        self.train_set: Optional[Dataset] = None

    # ---- facts the CLI links into models -------------------------------------------------------
    @property
    def in_channels(self) -> int:
        return self.image_shape[0]

    @property
    def image_size(self) -> int:
        return self.image_shape[-1]

    # ---- transforms -----------------------------------------------------------------------------
    def _default_transform(self, train: bool) -> Callable:
        return default_transforms(
            self.mean, self.std, train=train and self.augment, size=self.image_size,
            crop_padding=self.image_size // 8, flip=self.flip, normalize=self.normalize,
        )

    @property
    def train_transform(self) -> Callable:
        return self._train_transform or self._default_transform(train=True)

    @property
    def eval_transform(self) -> Callable:
        return self._eval_transform or self._default_transform(train=False)

    # ---- data -----------------------------------------------------------------------------------
    def load_split(self, split: str, transform: Callable) -> Dataset:
        """Return the official ``"train"`` or ``"test"`` split with ``transform`` applied."""
        raise NotImplementedError

    def _load(self, split: str, transform: Callable) -> Dataset:
        try:
            return self.load_split(split, transform)
        except DataNotFoundError:
            raise
        except (RuntimeError, OSError) as err:  # torchvision raises these offline / on missing files
            raise DataNotFoundError(
                f"{self.name}: could not load the {split!r} split from root={self.root!r} "
                f"(download={self.download}): {err}. {self.placement_hint}"
            ) from err

    def split_indices(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded (train, val) positions within the official training split of size ``n``."""
        n_val = int(round(self.val_size * n)) if self.val_size < 1 else int(self.val_size)
        if n_val >= n:
            raise ValueError(f"val_size={self.val_size} leaves no training samples out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        train, val = perm[n_val:], perm[:n_val]
        return self._limit(train, self.max_train_samples), val.sort().values

    def _limit(self, indices: torch.Tensor, limit: Optional[int]) -> torch.Tensor:
        if limit is not None and limit < len(indices):
            keep = torch.randperm(len(indices), generator=torch.Generator().manual_seed(self.seed + 1))[:limit]
            indices = indices[keep]
        return indices.sort().values

    def prepare_data(self) -> None:
        if self.download:
            self._load("train", None)
            self._load("test", None)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        full_train = self._load("train", self.train_transform)
        full_train_eval = self._load("train", self.eval_transform)
        train_idx, val_idx = self.split_indices(len(full_train))
        self.train_set = IndexedDataset(Subset(full_train, train_idx))
        self.train_set_eval = IndexedDataset(Subset(full_train_eval, train_idx))
        self.val_set = IndexedDataset(Subset(full_train_eval, val_idx))
        test = self._load("test", self.eval_transform)
        self.test_set = IndexedDataset(Subset(test, self._limit(torch.arange(len(test)), self.max_test_samples)))

    # ---- loaders --------------------------------------------------------------------------------
    def loader(self, dataset: Dataset, *, train: bool = False, batch_size: Optional[int] = None, **kwargs) -> DataLoader:
        """A dataloader with this datamodule's settings (shuffled and last batch dropped for training)."""
        return DataLoader(
            dataset,
            batch_size=batch_size or (self.batch_size if train else self.eval_batch_size),
            shuffle=train,
            drop_last=train and len(dataset) > (batch_size or self.batch_size),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self.loader(self.test_set)
