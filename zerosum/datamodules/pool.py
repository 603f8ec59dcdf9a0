"""Pool-based active learning over any :class:`~zerosum.datamodules.VisionDataModule`.

:class:`ActivePoolDataModule` wraps a datamodule and splits its **training split** into a labeled and
an unlabeled set (the validation and test splits are never in the pool). Pool indices are positions
in the wrapped training split, the same numbers the wrapped datamodule yields as the third element
of every batch, so a strategy's selection, the labeled-index file and the batches all speak one
language.

The state is one long tensor, ``labeled_round[i]`` = the round sample ``i`` was labeled in (``0`` for
the initial set, ``-1`` while unlabeled); it is the datamodule's ``state_dict`` and therefore travels
in every Lightning checkpoint.

Training reads the labeled set with training transforms, shuffled by a sampler seeded by
``(seed, epoch)`` (not the global RNG, so a resumed run draws the same batches). Scoring reads the
pool with evaluation transforms, unshuffled (``unlabeled_dataloader``). Methods that also train on
unlabeled data (VAAL's VAE and discriminator) set ``unlabeled_stream=True`` and get
``{"labeled": batch, "unlabeled": batch}`` training batches.
"""

from __future__ import annotations

from typing import Iterator, Literal, Optional, Sequence, Union

import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Sampler

from zerosum.datamodules.indexed import Subset, dataset_targets
from zerosum.datamodules.vision import VisionDataModule
from zerosum.datamodules.wrapped import WrappedDataModule


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``: reproducible across resumes.

    ``num_samples`` larger than ``n`` concatenates fresh permutations (cycling without replacement
    inside each pass). Lightning calls :meth:`set_epoch` every epoch; under DDP it shards this
    sampler's order with ``DistributedSamplerWrapper``. ``generator``, if given, is the DataLoader's
    generator: it is re-seeded per epoch too, so creating the loader's iterator (which draws the
    workers' base seed) never touches the global RNG.
    """

    def __init__(self, n: int, seed: int = 0, num_samples: Optional[int] = None,
                 generator: Optional[torch.Generator] = None):
        self.n, self.seed = int(n), int(seed)
        self.num_samples = int(num_samples) if num_samples is not None else self.n
        self.generator = generator
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.generator is not None:
            self.generator.manual_seed(self.seed * 1_000_003 + self.epoch + 7)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self.n == 0:
            return iter(())
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        passes = -(-self.num_samples // self.n)
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(passes)])[: self.num_samples]
        return iter(order.tolist())


class ActivePoolDataModule(WrappedDataModule):
    """Labeled / unlabeled split of ``datamodule``'s training split.

    Args:
        datamodule: the wrapped datamodule (its train split is the pool).
        initial_labeled: size of the initial labeled set: a count (int >= 1) or a fraction in (0, 1)
            of the training split.
        initial_mode: ``"random"`` (uniform) or ``"balanced"`` (as equal a count per class as possible).
        seed: seed of the initial set and of the training shuffles.
        unlabeled_stream: ``train_dataloader`` yields ``{"labeled": ..., "unlabeled": ...}`` with as many
            unlabeled batches (random, training transforms) as labeled ones.
    """

    def __init__(
        self,
        datamodule: VisionDataModule,
        initial_labeled: Union[int, float] = 0.1,
        initial_mode: Literal["random", "balanced"] = "random",
        seed: int = 0,
        unlabeled_stream: bool = False,
    ):
        super().__init__(datamodule)
        if initial_mode not in ("random", "balanced"):
            raise ValueError(f"initial_mode must be 'random' or 'balanced', got {initial_mode!r}")
        if isinstance(initial_labeled, bool) or not (
            (isinstance(initial_labeled, int) and initial_labeled >= 1)
            or (isinstance(initial_labeled, float) and 0 < initial_labeled < 1)
        ):
            raise ValueError(
                f"initial_labeled must be a count >= 1 (int) or a fraction in (0, 1) (float), got {initial_labeled!r}"
            )
        self.initial_labeled, self.initial_mode = initial_labeled, initial_mode
        self.seed, self.unlabeled_stream = int(seed), unlabeled_stream
        self.labeled_round: Optional[torch.Tensor] = None  # (N,) long; -1 = unlabeled
        self._pending_state: Optional[dict] = None

    @property
    def datamodule(self) -> VisionDataModule:
        """The wrapped datamodule (:attr:`data`), under the constructor's name for it."""
        return self.data

    # ---- pool state -----------------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        super().setup(stage)
        if self.labeled_round is None:
            n = len(self.data.train_set)
            self.labeled_round = torch.full((n,), -1, dtype=torch.long)
            self.labeled_round[self._initial_indices(n)] = 0
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)

    def _initial_indices(self, n: int) -> torch.Tensor:
        k = self.initial_labeled if isinstance(self.initial_labeled, int) else int(round(self.initial_labeled * n))
        if not 1 <= k <= n:
            raise ValueError(f"initial_labeled={self.initial_labeled} gives {k} samples; the pool has {n}")
        g = torch.Generator().manual_seed(self.seed)
        if self.initial_mode == "random":
            return torch.randperm(n, generator=g)[:k]
        # balanced: round-robin over classes, each class in a seeded random order
        targets = dataset_targets(self.data.train_set)
        order = torch.randperm(n, generator=g)
        t = targets[order]
        rank_in_class = torch.zeros(n, dtype=torch.long)
        for c in t.unique():
            where = (t == c).nonzero().squeeze(1)
            rank_in_class[where] = torch.arange(len(where))
        # sort by (rank within class, random position): takes one of each class, then the next, ...
        key = rank_in_class * n + torch.arange(n)
        return order[key.argsort()[:k]]

    def _require_setup(self) -> torch.Tensor:
        if self.labeled_round is None:
            raise RuntimeError("ActivePoolDataModule: call setup() (or let the Trainer do it) before using the pool")
        return self.labeled_round

    @property
    def num_train(self) -> int:
        return len(self._require_setup())

    @property
    def labeled_indices(self) -> torch.Tensor:
        return (self._require_setup() >= 0).nonzero().squeeze(1)

    @property
    def unlabeled_indices(self) -> torch.Tensor:
        return (self._require_setup() < 0).nonzero().squeeze(1)

    @property
    def num_labeled(self) -> int:
        return int((self._require_setup() >= 0).sum())

    @property
    def num_unlabeled(self) -> int:
        return self.num_train - self.num_labeled

    def label(self, indices: Union[torch.Tensor, Sequence[int]], round: int) -> None:
        """Mark ``indices`` (positions in the train split) as labeled in ``round``. Refuses indices
        that are out of range, repeated or already labeled, so no label is ever counted twice."""
        state = self._require_setup()
        idx = torch.as_tensor(indices, dtype=torch.long).flatten().cpu()
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(state)):
            raise IndexError(f"label(): indices must be in [0, {len(state)}), got min {int(idx.min())}, max {int(idx.max())}")
        if idx.unique().numel() != idx.numel():
            raise ValueError("label(): indices contain duplicates")
        already = idx[state[idx] >= 0]
        if already.numel():
            raise ValueError(f"label(): {already.numel()} indices are already labeled (e.g. {already[:5].tolist()})")
        state[idx] = int(round)

    def state_dict(self) -> dict:
        if self.labeled_round is None:
            return {}
        return {"labeled_round": self.labeled_round.clone(), "seed": self.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        if not state_dict:
            return
        if self.labeled_round is None:  # restored before setup: apply once the pool size is known
            self._pending_state = state_dict
            return
        saved = torch.as_tensor(state_dict["labeled_round"], dtype=torch.long)
        if saved.shape != self.labeled_round.shape:
            raise ValueError(
                f"checkpointed pool has {len(saved)} samples but the datamodule's train split has "
                f"{len(self.labeled_round)}: the data settings changed since the checkpoint"
            )
        self.labeled_round = saved.clone()

    # ---- loaders --------------------------------------------------------------------------------
    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self):
        dm = self.data
        labeled = Subset(dm.train_set, self.labeled_indices)
        bs = dm.batch_size
        g = torch.Generator()
        sampler = EpochShuffleSampler(len(labeled), self.seed, generator=g)
        sampler.set_epoch(self._epoch())
        lab = DataLoader(labeled, batch_size=bs, sampler=sampler, drop_last=len(labeled) > bs,
                         num_workers=dm.num_workers, pin_memory=dm.pin_memory, generator=g)
        if not self.unlabeled_stream:
            return lab
        unl_idx = self.unlabeled_indices
        if len(unl_idx) == 0:
            raise ValueError("unlabeled_stream=True but the unlabeled pool is empty (everything is labeled)")
        g_unl = torch.Generator()
        unl_sampler = EpochShuffleSampler(len(unl_idx), self.seed + 1, num_samples=len(lab) * bs, generator=g_unl)
        unl_sampler.set_epoch(self._epoch())
        # (no drop_last: under DDP each rank keeps at least as many unlabeled as labeled batches)
        unl = DataLoader(Subset(dm.train_set, unl_idx), batch_size=bs, sampler=unl_sampler,
                         num_workers=dm.num_workers, pin_memory=dm.pin_memory, generator=g_unl)
        return CombinedLoader({"labeled": lab, "unlabeled": unl}, mode="min_size")

    def labeled_dataloader(self, train: bool = False) -> DataLoader:
        """The labeled set: ``train=False`` (default) evaluation transforms, in index order;
        ``train=True`` training transforms, shuffled (to train an extra network on it)."""
        dm = self.data
        ds = Subset(dm.train_set if train else dm.train_set_eval, self.labeled_indices)
        return dm.loader(ds, train=train)

    def unlabeled_dataloader(self) -> DataLoader:
        """The unlabeled pool with evaluation transforms, in index order; batches ``(x, y, pool_index)``."""
        dm = self.data
        return dm.loader(Subset(dm.train_set_eval, self.unlabeled_indices), train=False)
