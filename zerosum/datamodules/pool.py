"""Pool-based active learning over any datamodule.

:class:`ActivePoolDataModule` wraps a datamodule (zerosum's, or any LightningDataModule) and splits its
**training split** into a labeled and an unlabeled set (the validation and test splits are never in
the pool). Pool indices are positions in the wrapped training dataset. The pool attaches them itself:
every loader a strategy scores (:meth:`~ActivePoolDataModule.unlabeled_dataloader`,
:meth:`~ActivePoolDataModule.labeled_dataloader`) yields ``(x, y, pool_index)``, whatever the wrapped
dataset's samples carry, so a selection never depends on batch positions. Training batches are the
wrapped dataset's own samples, unchanged: a plain ``x, y = batch`` module trains on the pool as is.

The state is one long tensor, ``labeled_round[i]`` = the round sample ``i`` was labeled in (``0`` for
the initial set, ``-1`` while unlabeled); it is the datamodule's ``state_dict`` and therefore travels
in every Lightning checkpoint.

Training reads the labeled set with training transforms in an order drawn from ``(seed, epoch)``
(:class:`EpochShuffleSampler`, not the global RNG), cycling the labeled set for as many batches as
the epoch has (:attr:`~ActivePoolDataModule.batches_per_epoch`, set by the
:class:`~zerosum.callbacks.ActiveLearning` callback: one round of ``steps_per_round`` batches, or one
pass). Each sample's augmentation is drawn from a seed of ``(seed, epoch, position)``, and the loader
is resumable (Lightning's ``state_dict`` protocol for dataloaders): a run resumed from any checkpoint,
mid-epoch included, trains on exactly the batches of an uninterrupted run, with any number of workers.
Scoring reads the pool with evaluation transforms, unshuffled. Methods that also train on unlabeled
data (VAAL's VAE and discriminator) set ``unlabeled_stream=True`` and get ``{"labeled": batch,
"unlabeled": batch}`` training batches.
"""

from __future__ import annotations

import os
import random
from typing import Callable, Iterator, Literal, Optional, Sequence, Union

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torch.utils.data.dataloader import default_collate

from zerosum.datamodules.indexed import Subset, dataset_targets
from zerosum.datamodules.wrapped import WrappedDataModule

_MIX = 1_000_003  # mixes (seed, epoch, position) into one seed


class EpochShuffleSampler(DistributedSampler):
    """Permutations of ``range(n)`` drawn from ``(seed, epoch)``: reproducible across resumes.

    ``num_samples`` (default ``n``) larger than ``n`` concatenates fresh permutations (cycling without
    replacement inside each pass). With ``num_replicas > 1`` rank ``rank`` takes every
    ``num_replicas``-th position of that global order (as ``DistributedSampler`` does; being one,
    Lightning does not wrap it again). ``start`` skips this rank's first positions (a resumed epoch).
    ``seeded=True`` yields ``(sample_seed, i)`` pairs for :class:`SeededSamples`, the seed a function of
    ``(seed, epoch, global position)``. Lightning calls :meth:`set_epoch` every epoch. ``generator``,
    if given, is the DataLoader's generator: it is re-seeded per epoch too, so creating the loader's
    iterator (which draws the workers' base seed) never touches the global RNG.

    Args:
        n: size of the set sampled from.
        seed: base seed of the orders.
        num_samples: length of the global order (all ranks together).
        generator: the DataLoader's generator, re-seeded per epoch.
        num_replicas: number of ranks sharing the order.
        rank: this rank.
        start: positions of this rank to skip.
        seeded: yield ``(sample_seed, index)`` pairs instead of indices.
    """

    def __init__(self, n: int, seed: int = 0, num_samples: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, num_replicas: int = 1, rank: int = 0,
                 start: int = 0, seeded: bool = False):
        # (DistributedSampler's own __init__ needs a dataset and a process group: set its fields here)
        self.n, self.seed = int(n), int(seed)
        self.total_size = int(num_samples) if num_samples is not None else self.n
        if self.total_size % num_replicas:
            raise ValueError(f"num_samples={self.total_size} must be a multiple of num_replicas={num_replicas}")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.per_rank = self.total_size // self.num_replicas
        self.seeded, self.generator = seeded, generator
        self.dataset, self.shuffle, self.drop_last = None, True, False
        self.set_epoch(0)
        self.start = int(start)

    @property
    def num_samples(self) -> int:  # what this rank yields
        return max(0, self.per_rank - self.start)

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != getattr(self, "epoch", None):
            self.start = 0  # (a resumed epoch's skip survives Lightning's set_epoch of that same epoch)
        self.epoch = int(epoch)
        if self.generator is not None:
            self.generator.manual_seed(self.seed * _MIX + self.epoch + 7)

    def __len__(self) -> int:
        return self.num_samples

    def _order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * _MIX + self.epoch)
        passes = -(-self.total_size // self.n)
        return torch.cat([torch.randperm(self.n, generator=g) for _ in range(passes)])[: self.total_size]

    def __iter__(self) -> Iterator:
        if self.n == 0 or self.num_samples == 0:
            return iter(())
        positions = torch.arange(self.rank, self.total_size, self.num_replicas)[self.start:]
        order = self._order()[positions]
        if not self.seeded:
            return iter(order.tolist())
        base = (self.seed * _MIX + self.epoch) * _MIX
        return iter([((base + int(p)) % (2**63), int(i)) for p, i in zip(positions, order)])


class SeededSamples(Dataset):
    """``dataset[i]`` drawn with torch's (CPU), Python's and NumPy's global RNGs seeded from the key
    ``(sample_seed, i)``: a sample's augmentation depends on its seed only, not on the worker that
    loads it or on what was loaded before. Torch's and Python's states are restored afterwards;
    NumPy's is left as the sample seeded it (saving it would cost ~0.2 ms a sample), which is harmless
    under :class:`~zerosum.callbacks.ActiveLearning` as it re-seeds every RNG at every training batch."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key):
        seed, i = key
        torch_state, py_state = torch.get_rng_state(), random.getstate()
        torch.random.default_generator.manual_seed(seed)  # (CPU only: torch.manual_seed would queue CUDA seeding)
        random.seed(seed)
        np.random.seed(seed % (2**32))
        try:
            return self.dataset[i]
        finally:
            torch.set_rng_state(torch_state)
            random.setstate(py_state)


class ResumableLoader(DataLoader):
    """A training DataLoader Lightning can resume mid-epoch (its ``state_dict`` protocol).

    ``state_dict`` records the epoch and how many of its batches were trained (``trained()``, read
    from the trainer when the checkpoint is written); ``load_state_dict`` makes the sampler skip
    them. ``len`` stays the epoch's full batch count, as Lightning counts the resumed batches on.
    """

    def __init__(self, *args, trained: Optional[Callable[[], int]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.trained = trained

    def __len__(self) -> int:
        sampler = self.sampler
        return -(-sampler.per_rank // self.batch_size)

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.trained()) if self.trained else 0}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("epoch", -1)) != self.sampler.epoch:
            raise RuntimeError(f"resumable loader: checkpoint of epoch {state.get('epoch')}, loader of epoch "
                               f"{self.sampler.epoch}")
        self.sampler.start = int(state["batches"]) * int(self.batch_size)


class PoolIndexed(Subset):
    """``(x, y, pool_index)`` for the pool samples ``indices`` of ``dataset`` (whose samples are
    ``(x, y, ...)``): the pool index is attached here, never read from the wrapped data."""

    def __getitem__(self, position: int):
        i = int(self.indices[position])
        sample = self.dataset[i]
        if not isinstance(sample, (tuple, list)) or len(sample) < 2:
            raise TypeError(f"ActivePoolDataModule: training samples must be (x, y, ...) tuples; sample {i} is "
                            f"{type(sample).__name__}")
        return sample[0], sample[1], i


class DatasetsDataModule(L.LightningDataModule):
    """The datamodule :class:`ActivePoolDataModule` builds from datasets given directly.

    Args:
        train_set: the pool (training transforms).
        train_set_eval: the same samples with evaluation transforms (default: ``train_set``).
        val_set: validation split, or None.
        test_set: test split, or None.
        batch_size: training batch size.
        eval_batch_size: evaluation batch size (default: ``batch_size``).
        num_workers: dataloader workers.
    """

    def __init__(self, train_set: Dataset, train_set_eval: Optional[Dataset] = None,
                 val_set: Optional[Dataset] = None, test_set: Optional[Dataset] = None, batch_size: int = 32,
                 eval_batch_size: Optional[int] = None, num_workers: int = 0):
        super().__init__()
        self.train_set, self.train_set_eval = train_set, train_set_eval if train_set_eval is not None else train_set
        self.val_set, self.test_set = val_set, test_set
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, False

    def _eval(self, ds: Optional[Dataset], name: str) -> DataLoader:
        if ds is None:
            raise ValueError(f"{name}: ActivePoolDataModule was given no {name}; allowed: a Dataset")
        return DataLoader(ds, batch_size=self.eval_batch_size, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval(self.val_set, "val_dataset")

    def test_dataloader(self) -> DataLoader:
        return self._eval(self.test_set, "test_dataset")


class ActivePoolDataModule(WrappedDataModule):
    """Labeled / unlabeled split of a datamodule's training split.

    The contract with the wrapped datamodule is small. After its ``setup("fit")`` the pool reads:

    - the training dataset: ``datamodule.train_set`` if it has one (zerosum's datamodules), else the
      ``dataset`` of ``datamodule.train_dataloader()``; map-style (``len`` and ``[i]``), the same samples
      in the same order at every ``setup`` (seed your ``random_split``), samples ``(x, y, ...)``;
    - optionally ``datamodule.train_set_eval``: the same samples with evaluation transforms, used to
      score the pool (default: the training dataset itself);
    - the batch size, workers, ``pin_memory`` and ``collate_fn`` of its training DataLoader (or the
      ``batch_size`` / ``num_workers`` attributes of the datamodule, or this class's arguments);
    - ``val_dataloader()`` / ``test_dataloader()``, passed through (what the callback evaluates on).

    Instead of a datamodule, datasets can be given directly (``train_dataset``, ``eval_dataset``,
    ``val_dataset``, ``test_dataset``, ``batch_size``).

    Args:
        datamodule: the wrapped datamodule (its training split is the pool).
        initial_labeled: size of the initial labeled set: a count (int >= 1) or a fraction in (0, 1)
            of the training split.
        initial_mode: ``"random"`` (uniform) or ``"balanced"`` (as equal a count per class as possible).
        seed: seed of the initial set and of the training order.
        unlabeled_stream: ``train_dataloader`` yields ``{"labeled": ..., "unlabeled": ...}`` with as many
            unlabeled batches (random, training transforms) as labeled ones.
        train_dataset: the pool, when no datamodule is given.
        eval_dataset: the pool's samples with evaluation transforms (with ``train_dataset``).
        val_dataset: the validation split (with ``train_dataset``).
        test_dataset: the test split (with ``train_dataset``).
        batch_size: training batch size (default: the wrapped datamodule's).
        eval_batch_size: batch size for scoring the pool (default: the wrapped datamodule's, else
            ``batch_size``).
        num_workers: workers of the pool's loaders (default: the wrapped datamodule's, else 0).
    """

    def __init__(
        self,
        datamodule: Optional[L.LightningDataModule] = None,
        initial_labeled: Union[int, float] = 0.1,
        initial_mode: Literal["random", "balanced"] = "random",
        seed: int = 0,
        unlabeled_stream: bool = False,
        train_dataset: Optional[Dataset] = None,
        eval_dataset: Optional[Dataset] = None,
        val_dataset: Optional[Dataset] = None,
        test_dataset: Optional[Dataset] = None,
        batch_size: Optional[int] = None,
        eval_batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
    ):
        if (datamodule is None) == (train_dataset is None):
            raise ValueError("datamodule: give either a datamodule or train_dataset (not both, not neither); "
                             "allowed: ActivePoolDataModule(datamodule=...) or ActivePoolDataModule(train_dataset=...)")
        if datamodule is None:
            datamodule = DatasetsDataModule(train_dataset, eval_dataset, val_dataset, test_dataset,
                                            batch_size=batch_size or 32, eval_batch_size=eval_batch_size,
                                            num_workers=num_workers or 0)
        elif not isinstance(datamodule, L.LightningDataModule):
            raise TypeError(f"datamodule: expected a LightningDataModule, got {type(datamodule).__name__}; "
                            "allowed: a LightningDataModule, or datasets via train_dataset=...")
        super().__init__(datamodule)
        if initial_mode not in ("random", "balanced"):
            raise ValueError(f"initial_mode: got {initial_mode!r}; allowed: 'random', 'balanced'")
        if isinstance(initial_labeled, bool) or not (
            (isinstance(initial_labeled, int) and initial_labeled >= 1)
            or (isinstance(initial_labeled, float) and 0 < initial_labeled < 1)
        ):
            raise ValueError(f"initial_labeled: got {initial_labeled!r}; allowed: a count >= 1 (int) or a fraction "
                             "in (0, 1) (float)")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name}: got {value}; allowed: an int >= 1")
        self.initial_labeled, self.initial_mode = initial_labeled, initial_mode
        self.seed, self.unlabeled_stream = int(seed), unlabeled_stream
        self._batch_size, self._eval_batch_size, self._num_workers = batch_size, eval_batch_size, num_workers
        self.labeled_round: Optional[torch.Tensor] = None  # (N,) long; -1 = unlabeled
        self._pending_state: Optional[dict] = None
        self.train_set: Optional[Dataset] = None
        self.train_set_eval: Optional[Dataset] = None
        self._collate: Optional[Callable] = None
        self._pin_memory = False
        self._resolved_batch_size, self._resolved_workers = 32, 0
        #: training batches per epoch and rank (set by ActiveLearning; None: one pass over the labeled set)
        self.batches_per_epoch: Optional[int] = None

    @property
    def datamodule(self) -> L.LightningDataModule:
        """The wrapped datamodule (:attr:`data`), under the constructor's name for it."""
        return self.data

    @property
    def batch_size(self) -> int:
        return int(self._batch_size or getattr(self.data, "batch_size", None) or self._resolved_batch_size)

    @property
    def eval_batch_size(self) -> int:
        return int(self._eval_batch_size or getattr(self.data, "eval_batch_size", None) or self.batch_size)

    @property
    def num_workers(self) -> int:
        if self._num_workers is not None:
            return int(self._num_workers)
        return int(getattr(self.data, "num_workers", None) or self._resolved_workers)

    @property
    def dataset_name(self) -> str:
        """A name for titles: the wrapped datamodule's ``name`` attribute (with the folder's name for
        image folders), else its class name."""
        name = str(getattr(self.data, "name", None) or type(self.data).__name__)
        root = getattr(self.data, "root", None)
        return f"{name} ({os.path.basename(os.path.normpath(root))})" if name == "ImageFolder" and root else name

    # ---- pool state -----------------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        super().setup(stage)
        if self.train_set is None:
            self._resolve_datasets()
        if self.labeled_round is None:
            n = len(self.train_set)
            self.labeled_round = torch.full((n,), -1, dtype=torch.long)
            self.labeled_round[self._initial_indices(n)] = 0
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)

    def _resolve_datasets(self) -> None:
        """The wrapped data's training dataset (and its evaluation twin) and loader settings."""
        dm = self.data
        train = getattr(dm, "train_set", None)
        loader = None
        if train is None:
            fn = getattr(dm, "train_dataloader", None)
            try:
                loader = fn() if callable(fn) else None
            except Exception as err:  # Lightning's default hook raises: not implemented
                raise TypeError(f"datamodule: {type(dm).__name__} has neither `train_set` nor a working "
                                f"train_dataloader() ({err}); allowed: a datamodule whose train_dataloader() "
                                "returns a DataLoader over a map-style dataset") from err
            if not isinstance(loader, DataLoader):
                raise TypeError(f"datamodule: {type(dm).__name__}.train_dataloader() returned "
                                f"{type(loader).__name__}; allowed: a torch DataLoader")
            train = loader.dataset
            self._resolved_batch_size = loader.batch_size or 32
            self._resolved_workers = loader.num_workers
            self._pin_memory = loader.pin_memory
            if loader.collate_fn is not default_collate:
                self._collate = loader.collate_fn
        else:
            self._pin_memory = bool(getattr(dm, "pin_memory", False))
        if not (hasattr(train, "__getitem__") and hasattr(train, "__len__")):
            raise TypeError(f"datamodule: the training dataset ({type(train).__name__}) must be map-style "
                            "(len() and [i]); allowed: a map-style Dataset")
        self.train_set = train
        self.train_set_eval = getattr(dm, "train_set_eval", None) or train
        if len(self.train_set_eval) != len(train):
            raise ValueError(f"datamodule: train_set_eval has {len(self.train_set_eval)} samples but the training "
                             f"dataset {len(train)}; allowed: the same samples in the same order")

    def _initial_indices(self, n: int) -> torch.Tensor:
        k = self.initial_labeled if isinstance(self.initial_labeled, int) else int(round(self.initial_labeled * n))
        if not 1 <= k <= n:
            raise ValueError(f"initial_labeled: {self.initial_labeled} gives {k} samples; allowed: 1 to the pool's "
                             f"{n} samples")
        g = torch.Generator().manual_seed(self.seed)
        if self.initial_mode == "random":
            return torch.randperm(n, generator=g)[:k]
        # balanced: round-robin over classes, each class in a seeded random order
        targets = dataset_targets(self.train_set)
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
            raise IndexError(f"label(): indices must be in [0, {len(state)}), got min {int(idx.min())}, "
                             f"max {int(idx.max())}")
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
    def _trainer_attr(self, name: str, default):
        trainer = getattr(self, "trainer", None)
        return getattr(trainer, name, default) if trainer is not None else default

    def _trained_batches(self) -> int:
        """Training batches of the current epoch already trained (Lightning's own count)."""
        trainer = self.trainer
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed) if trainer is not None else 0

    def _training_loader(self, indices: torch.Tensor, seed: int, batches: int) -> ResumableLoader:
        """``batches`` batches per rank over ``indices``, cycling them in a ``(seed, epoch)`` order."""
        world, rank = int(self._trainer_attr("world_size", 1)), int(self._trainer_attr("global_rank", 0))
        epoch = int(self._trainer_attr("current_epoch", 0))
        bs = self.batch_size
        g = torch.Generator()
        sampler = EpochShuffleSampler(len(indices), seed, num_samples=batches * bs * world, generator=g,
                                      num_replicas=world, rank=rank, seeded=True)
        sampler.set_epoch(epoch)
        kwargs = {"collate_fn": self._collate} if self._collate is not None else {}
        return ResumableLoader(SeededSamples(Subset(self.train_set, indices)), batch_size=bs, sampler=sampler,
                               num_workers=self.num_workers, pin_memory=self._pin_memory, generator=g,
                               trained=self._trained_batches, **kwargs)

    def epoch_batches(self) -> int:
        """Training batches per epoch and rank: :attr:`batches_per_epoch` if set, else one pass over
        the labeled set in full batches (the last one completed from the next pass)."""
        if self.batches_per_epoch is not None:
            return int(self.batches_per_epoch)
        world = int(self._trainer_attr("world_size", 1))
        return max(1, -(-self.num_labeled // (self.batch_size * world)))

    def train_dataloader(self):
        batches = self.epoch_batches()
        lab = self._training_loader(self.labeled_indices, self.seed, batches)
        if not self.unlabeled_stream:
            return lab
        unl_idx = self.unlabeled_indices
        if len(unl_idx) == 0:
            raise ValueError("unlabeled_stream=True but the unlabeled pool is empty (everything is labeled)")
        unl = self._training_loader(unl_idx, self.seed + 1, batches)
        return CombinedLoader({"labeled": lab, "unlabeled": unl}, mode="min_size")

    def _scoring_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers,
                          pin_memory=self._pin_memory)

    def labeled_dataloader(self, train: bool = False) -> DataLoader:
        """The labeled set as ``(x, y, pool_index)``: ``train=False`` (default) evaluation transforms, in
        index order; ``train=True`` training transforms, shuffled (to train an extra network on it)."""
        self._require_setup()
        if train:
            n = self.num_labeled
            return DataLoader(PoolIndexed(self.train_set, self.labeled_indices), batch_size=self.batch_size,
                              shuffle=True, drop_last=n > self.batch_size, num_workers=self.num_workers,
                              pin_memory=self._pin_memory)
        return self._scoring_loader(PoolIndexed(self.train_set_eval, self.labeled_indices))

    def unlabeled_dataloader(self) -> DataLoader:
        """The unlabeled pool with evaluation transforms, in index order; batches ``(x, y, pool_index)``."""
        self._require_setup()
        return self._scoring_loader(PoolIndexed(self.train_set_eval, self.unlabeled_indices))
