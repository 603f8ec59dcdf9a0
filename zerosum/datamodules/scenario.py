"""Learning scenarios of CAAT (Zhou et al. 2023, Sec. 6) over any zerosum vision datamodule:
label noise (symmetric or pair flips), long-tailed training sets, and a clean balanced meta set.

Built from the wrapped datamodule's training split, in this order (all seeded by ``seed``):
1. the meta set: ``meta_per_class`` samples of every class, removed from the training split and kept
   clean (the meta-net's unbiased reference, Sec. 5);
2. the long tail: class c keeps ``n_c = n_max / IF^{c/(C-1)}`` samples (``imbalance_factor`` IF,
   ``n_max`` the smallest class count left after step 1, so the head is balanced);
3. label noise on what is left: exactly ``round(noise_rate * n)`` samples get a wrong label, drawn
   uniformly among the other classes ("symmetric"), among two partner classes drawn once per class
   ("pair", the official CAAT ``flip2`` pair-flip noise: each partner receives rate/2 of the class) or
   ``y -> (y + 1) mod C`` ("pair_next").
Validation and test splits stay clean (``validate_on: meta`` validates on the meta set instead, as
the official CAAT code does for its class-wise errors). The realised scenario (counts per class, noise rate, seed)
is in :attr:`scenario`, in the logged hyperparameters and written to ``<log_dir>/scenario.json``.

Training batches are ``{"train": (x, y, idx), "meta": (x, y, idx)}`` (a ``CombinedLoader``, the
meta stream cycling) when ``combine_meta`` is true, else plain ``(x, y, idx)`` batches (baselines).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import Dataset

from zerosum.datamodules.indexed import IndexedDataset, Subset, dataset_targets
from zerosum.datamodules.vision import VisionDataModule
from zerosum.datamodules.wrapped import WrappedDataModule

NOISE_TYPES = ("none", "symmetric", "pair", "pair_next")
VALIDATION_SETS = ("val", "meta")


class Relabeled(Dataset):
    """``(x, labels[i])`` for the i-th ``(x, _)`` of ``dataset``."""

    def __init__(self, dataset: Dataset, labels: torch.Tensor):
        if len(dataset) != len(labels):  # type: ignore[arg-type]
            raise ValueError(f"{len(dataset)} samples but {len(labels)} labels")  # type: ignore[arg-type]
        self.dataset, self.labels = dataset, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.dataset[index][0], int(self.labels[index])

    @property
    def targets(self) -> torch.Tensor:
        return self.labels


def pair_partners(num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``(C, 2)``: for each class, two distinct other classes (official ``flip2_corruption``)."""
    if num_classes < 3:
        raise ValueError(f"noise: 'pair' flips to two other classes and needs >= 3 classes, the data has "
                         f"{num_classes}; allowed: symmetric or pair_next")
    rows = []
    for c in range(num_classes):
        others = torch.tensor([k for k in range(num_classes) if k != c])
        rows.append(others[torch.randperm(len(others), generator=generator)[:2]])
    return torch.stack(rows)


def corrupt_labels(labels: torch.Tensor, num_classes: int, noise: str, rate: float,
                   generator: torch.Generator) -> torch.Tensor:
    """Labels with exactly ``round(rate * n)`` of them changed to a wrong class (see module doc)."""
    if noise not in NOISE_TYPES:
        raise ValueError(f"noise: {noise!r}; allowed: {', '.join(NOISE_TYPES)}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise_rate: {rate}; allowed: a fraction in [0, 1)")
    noisy = labels.clone()
    if noise == "none" or rate == 0:
        return noisy
    partners = pair_partners(num_classes, generator) if noise == "pair" else None
    n_flip = int(round(rate * len(labels)))
    flip = torch.randperm(len(labels), generator=generator)[:n_flip]
    if noise == "pair_next":
        noisy[flip] = (labels[flip] + 1) % num_classes
    elif noise == "pair":
        which = torch.randint(0, 2, (n_flip,), generator=generator)
        noisy[flip] = partners[labels[flip], which]
    else:
        offset = torch.randint(1, num_classes, (n_flip,), generator=generator)
        noisy[flip] = (labels[flip] + offset) % num_classes
    return noisy


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """``n_c = floor(n_max / IF^{c/(C-1)})`` (at least 1)."""
    if imbalance_factor < 1:
        raise ValueError(f"imbalance_factor must be >= 1; got {imbalance_factor}")
    if num_classes == 1:
        return [n_max]
    return [max(1, int(n_max / imbalance_factor ** (c / (num_classes - 1)))) for c in range(num_classes)]


class ScenarioDataModule(WrappedDataModule):
    """Wraps ``data`` (any :class:`~zerosum.datamodules.VisionDataModule`).

    Args:
        data: the datamodule whose training split is turned into the scenario.
        noise: "none", "symmetric" (uniform over the wrong classes), "pair" (the official two-class
            pair flip) or "pair_next" (y -> y+1 mod C).
        noise_rate: fraction of training labels made wrong.
        imbalance_factor: IF >= 1 of the long tail (1: balanced).
        meta_per_class: clean samples per class in the meta set (0: none; e.g. 10 for digits,
            300 for CIFAR-10 in the paper's setting).
        meta_batch_size: batch size of the meta stream (default: the training batch size).
        combine_meta: yield ``{"train", "meta"}`` training batches (CAAT) instead of plain ones.
        seed: seed of the meta split, the tail and the noise (independent of the training seed).
        validate_on: "val" (the wrapped datamodule's validation split) or "meta" (the clean meta
            set, the official CAAT code's validation set for its class-wise errors).
    """

    def __init__(self, data: VisionDataModule, noise: str = "none", noise_rate: float = 0.0,
                 imbalance_factor: float = 1.0, meta_per_class: int = 0, meta_batch_size: Optional[int] = None,
                 combine_meta: bool = True, seed: int = 0, validate_on: str = "val"):
        super().__init__(data)
        if noise not in NOISE_TYPES:
            raise ValueError(f"noise: {noise!r}; allowed: {', '.join(NOISE_TYPES)}")
        if not 0.0 <= noise_rate < 1.0:
            raise ValueError(f"noise_rate: {noise_rate}; allowed: a fraction in [0, 1)")
        if noise == "none" and noise_rate > 0:
            raise ValueError(f"noise_rate: {noise_rate} with noise: none; allowed: 0, or a noise type "
                             f"({', '.join(NOISE_TYPES[1:])})")
        if imbalance_factor < 1:
            raise ValueError(f"imbalance_factor: {imbalance_factor}; allowed: >= 1 (1: balanced)")
        if meta_per_class < 0:
            raise ValueError(f"meta_per_class: {meta_per_class}; allowed: an integer >= 0")
        if combine_meta and meta_per_class == 0:
            raise ValueError("meta_per_class: 0 with combine_meta: true; allowed: meta_per_class > 0, or "
                             "combine_meta: false")
        if validate_on not in VALIDATION_SETS:
            raise ValueError(f"validate_on: {validate_on!r}; allowed: {', '.join(VALIDATION_SETS)}")
        if validate_on == "meta" and meta_per_class == 0:
            raise ValueError("validate_on: meta needs a meta set; allowed: meta_per_class > 0, or validate_on: val")
        self.validate_on = validate_on
        self.save_hyperparameters(ignore=["data"])
        self.noise, self.noise_rate, self.imbalance_factor = noise, noise_rate, imbalance_factor
        self.meta_per_class, self.combine_meta, self.seed = meta_per_class, combine_meta, seed
        self.meta_batch_size = meta_batch_size or data.batch_size
        self.train_set: Optional[Dataset] = None
        self.scenario: dict = {}

    # ---- data -------------------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is None:
            super().setup(stage)
            self._build()
        self._record()

    def _build(self) -> None:
        base_train = self.data.train_set.dataset  # Subset(full train, positions): (x, y)
        base_eval = self.data.train_set_eval.dataset
        labels = dataset_targets(self.data.train_set)
        C, g = self.num_classes, torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(labels), generator=g)
        per_class = [order[labels[order] == c] for c in range(C)]  # shuffled positions of each class
        short = [c for c in range(C) if len(per_class[c]) <= self.meta_per_class]
        if short:
            raise ValueError(f"meta_per_class={self.meta_per_class} leaves no training samples of classes {short} "
                             f"(class sizes {[len(p) for p in per_class]})")
        meta = torch.cat([p[: self.meta_per_class] for p in per_class])
        rest = [p[self.meta_per_class:] for p in per_class]
        counts = long_tail_counts(min(len(p) for p in rest), C, self.imbalance_factor) \
            if self.imbalance_factor > 1 else [len(p) for p in rest]
        keep = torch.cat([p[:n] for p, n in zip(rest, counts)]).sort().values
        clean = labels[keep]
        noisy = corrupt_labels(clean, C, self.noise, self.noise_rate, g)
        self.clean_targets, self.targets, self.is_noisy = clean, noisy, noisy != clean
        self.train_set = IndexedDataset(Relabeled(Subset(base_train, keep), noisy))
        self.train_set_eval = IndexedDataset(Relabeled(Subset(base_eval, keep), noisy))
        self.meta_set = IndexedDataset(Subset(base_train, meta.sort().values)) if len(meta) else None
        self.test_set = self.data.test_set
        if self.validate_on == "meta":
            self.val_set = IndexedDataset(Subset(base_eval, meta.sort().values))  # without augmentation
        else:
            self.val_set = self.data.val_set
        self.class_counts = torch.bincount(noisy, minlength=C)
        # the official CAAT ``class_rate``: the designed long-tail profile (equal counts when balanced),
        # neither the realised class sizes nor the noisy label counts
        self.design_class_counts = torch.tensor(long_tail_counts(1000, C, self.imbalance_factor))
        self.scenario = {
            "dataset": getattr(self.data, "name", type(self.data).__name__), "seed": self.seed,
            "noise": self.noise, "noise_rate": self.noise_rate, "realised_noise_rate": float(self.is_noisy.float().mean()),
            "imbalance_factor": self.imbalance_factor, "meta_per_class": self.meta_per_class,
            "train_size": len(keep), "clean_class_counts": torch.bincount(clean, minlength=C).tolist(),
            "observed_class_counts": self.class_counts.tolist(), "validate_on": self.validate_on,
            "meta_class_counts": torch.bincount(labels[meta], minlength=C).tolist() if len(meta) else [0] * C,
        }

    def _record(self) -> None:
        """Puts the realised scenario into the logged hyperparameters and ``<log_dir>/scenario.json``."""
        self.hparams["scenario"] = self.scenario
        trainer = self.trainer
        if trainer is None or trainer.fast_dev_run or not trainer.loggers:
            return
        for logger in trainer.loggers:  # rank-zero only inside the loggers; lands in hparams.yaml / TensorBoard
            logger.log_hyperparams({"scenario": self.scenario})
        log_dir = trainer.log_dir or trainer.default_root_dir  # log_dir is a collective (broadcast): every rank asks
        if log_dir and trainer.is_global_zero:
            os.makedirs(log_dir, exist_ok=True)
            with open(os.path.join(log_dir, "scenario.json"), "w") as f:
                json.dump(self.scenario, f, indent=1)

    # ---- loaders ----------------------------------------------------------------------------
    def val_dataloader(self):
        return self.data.loader(self.val_set) if self.validate_on == "meta" else super().val_dataloader()

    def train_dataloader(self):
        train = self.data.loader(self.train_set, train=True)
        if not self.combine_meta:
            return train
        meta = self.data.loader(self.meta_set, train=True, batch_size=min(self.meta_batch_size, len(self.meta_set)))
        return CombinedLoader({"train": train, "meta": meta}, mode="max_size_cycle")
