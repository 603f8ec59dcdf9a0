"""Weighted k-nearest-neighbour accuracy of a representation (Wu et al. 2018, Eq. 5-6; the kNN
monitor of self-supervised learning): validation features vote with the labels of their k most
cosine-similar training features, weighted by ``exp(sim / T)``.

Works with any LightningModule and datamodule. The **bank** (labeled training samples, ideally with
evaluation transforms) comes from the first of:

1. ``bank_loader``: the name of a method of the datamodule that returns the bank's DataLoader
   (``bank_loader: train_dataloader`` when the training batches carry no augmentation);
2. a ``bank_dataloader()`` method of the datamodule, then of the LightningModule;
3. the datamodule's ``train_set_eval`` dataset (every zerosum datamodule has it), read with the
   datamodule's ``loader()`` (its workers and evaluation batch size) when it has one.

Features are those of :mod:`zerosum.callbacks.batch_features` (``feature_fn``, the step's
``"features"`` output, or ``features(x)``). Under DDP the bank is sharded: every rank computes the
features of ``1/world`` of it and the shards are gathered (:func:`zerosum.inference.map_pool`,
:func:`zerosum.parallel.gather_rows`), so each rank holds the whole bank for the cost of its share.
The queries (the validation split) are sharded by the trainer; correct counts are summed over ranks.
"""

from __future__ import annotations

from typing import Callable, Optional

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset

from zerosum.callbacks.batch_features import batch_images, batch_labels, feature_extractor, step_features
from zerosum.inference import map_pool


def knn_predict(queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Predicted classes of ``queries`` (rows l2-normalised here) from the ``bank``."""
    q, b = F.normalize(queries, dim=1), F.normalize(bank, dim=1)
    sim = q @ b.t()
    k = min(k, b.shape[0])
    top_sim, top_idx = sim.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(q.shape[0], num_classes, device=q.device, dtype=weights.dtype)
    votes.scatter_add_(1, bank_labels[top_idx], weights)
    return votes.argmax(1)


class KNNAccuracy(L.Callback):
    """Logs ``knn/val_acc`` after each validation epoch (see the module docstring for where the bank
    and the features come from). Bank samples and queries with label < 0 are dropped.

    Args:
        k: neighbours that vote (Wu et al.: 200; 20 is the common monitor choice).
        temperature: vote temperature T of ``exp(sim / T)`` (Wu et al.: 0.07).
        max_bank: keep a seeded random subset of at most this many bank samples (CPU runs).
        every_n_epochs: evaluate only every n-th validation epoch.
        batch_size: batch size of the bank pass (default: the bank loader's).
        seed: seed of the ``max_bank`` subset.
        bank_loader: name of a datamodule method returning the bank's DataLoader (default: see above).
        feature_fn: name of a method or submodule of the module giving ``(batch, d)`` features.
        num_classes: default: the datamodule's ``num_classes``, else the largest bank label + 1.
    """

    def __init__(self, k: int = 20, temperature: float = 0.07, max_bank: Optional[int] = None,
                 every_n_epochs: int = 1, batch_size: Optional[int] = None, seed: int = 0,
                 bank_loader: Optional[str] = None, feature_fn: Optional[str] = None,
                 num_classes: Optional[int] = None):
        if k < 1:
            raise ValueError(f"k: {k}; allowed: an integer >= 1")
        if temperature <= 0:
            raise ValueError(f"temperature: {temperature}; allowed: a positive number")
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs: {every_n_epochs}; allowed: an integer >= 1")
        if max_bank is not None and max_bank < 1:
            raise ValueError(f"max_bank: {max_bank}; allowed: an integer >= 1 or null (the whole bank)")
        self.k, self.temperature, self.max_bank = k, temperature, max_bank
        self.every_n_epochs, self.batch_size, self.seed = every_n_epochs, batch_size, seed
        self.bank_loader, self.feature_fn, self.num_classes = bank_loader, feature_fn, num_classes
        self._feats: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        #: rows of the last bank this rank computed itself, and the whole bank's size (for tests/logs)
        self.last_local_rows, self.last_bank_size = 0, 0

    def _active(self, trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    # ---- the bank ------------------------------------------------------------------------------
    def bank_hook(self, trainer, pl_module) -> Callable[[], DataLoader]:
        """The hook that gives the bank's DataLoader: the first that exists (module docstring)."""
        dm = trainer.datamodule
        if self.bank_loader:
            method = getattr(dm, self.bank_loader, None)
            if not callable(method):
                raise ValueError(f"bank_loader: the datamodule {type(dm).__name__} has no method {self.bank_loader!r}; "
                                 "allowed: the name of a datamodule method returning the bank's DataLoader")
            return method
        for owner in (dm, pl_module):
            if callable(getattr(owner, "bank_dataloader", None)):
                return owner.bank_dataloader
        if getattr(dm, "train_set_eval", None) is not None:
            if callable(getattr(dm, "loader", None)):
                return lambda: dm.loader(dm.train_set_eval)
            return lambda: DataLoader(dm.train_set_eval, batch_size=self.batch_size or 256,
                                      num_workers=getattr(dm, "num_workers", 0))
        raise ValueError(
            f"bank_loader: KNNAccuracy needs a bank of labeled training samples and neither the datamodule "
            f"({type(dm).__name__}) nor the module ({type(pl_module).__name__}) provides one; allowed: a "
            "bank_dataloader() method on either, a train_set_eval dataset on the datamodule, or "
            "KNNAccuracy(bank_loader='train_dataloader') naming a datamodule method that returns it")

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Fail before training when there is no bank or the named ``feature_fn`` does not exist."""
        if stage in ("fit", "validate"):
            self.bank_hook(trainer, pl_module)
            if self.feature_fn:
                feature_extractor(pl_module, self.feature_fn, "KNNAccuracy")

    @torch.no_grad()
    def bank(self, trainer, pl_module) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of the whole bank, identical on every rank (computed sharded)."""
        loader = self.bank_hook(trainer, pl_module)()
        dataset = loader.dataset
        if self.max_bank is not None and self.max_bank < len(dataset):
            keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))[: self.max_bank]
            dataset = Subset(dataset, keep.sort().values.tolist())
        loader = DataLoader(dataset, batch_size=self.batch_size or loader.batch_size or 256,
                            num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory)
        extract = feature_extractor(pl_module, self.feature_fn, "KNNAccuracy")
        rows = [0]

        def features_and_label(module, batch):
            h = extract(batch_images(batch)).float()
            rows[0] += len(h)
            return torch.cat([h.reshape(len(h), -1), batch_labels(batch).to(h.device).float().unsqueeze(1)], 1)

        out, _, _ = map_pool(trainer, pl_module, loader, features_and_label)
        out = out.reshape(len(out), -1)
        self.last_local_rows, self.last_bank_size = rows[0], len(out)
        feats, labels = out[:, :-1], out[:, -1].long()
        keep = labels >= 0
        return feats[keep].to(pl_module.device), labels[keep].to(pl_module.device)

    # ---- the queries -----------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._feats, self._labels = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._active(trainer):
            self._feats.append(step_features(pl_module, outputs, batch, self.feature_fn, "KNNAccuracy").float())
            self._labels.append(batch_labels(batch).to(self._feats[-1].device))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._active(trainer) or not self._feats:
            return
        bank, bank_labels = self.bank(trainer, pl_module)
        queries, labels = torch.cat(self._feats), torch.cat(self._labels)
        classes = self.num_classes or getattr(trainer.datamodule, "num_classes", None)
        classes = int(classes) if classes else int(bank_labels.max()) + 1 if len(bank_labels) else 1
        keep = (labels >= 0) & (labels < classes)
        pred = knn_predict(queries[keep], bank, bank_labels, classes, self.k, self.temperature)
        counts = torch.stack([(pred == labels[keep]).sum().float(), keep.sum().float()])
        counts = trainer.strategy.reduce(counts, reduce_op="sum")
        if counts[1] > 0:
            pl_module.log("knn/val_acc", counts[0] / counts[1], prog_bar=True, sync_dist=True)  # equal on all ranks
        self._feats, self._labels = [], []
