"""Importable helpers for the active-learning tests (DDP spawn unpickles them in fresh processes)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from zerosum.datamodules import ActivePoolDataModule, SyntheticDataModule
from zerosum.query import BALDStrategy, CoresetStrategy, EntropyStrategy, QueryStrategy, StochasticBatchStrategy


class TinyModule(L.LightningModule):
    """A user's own LightningModule: flatten -> linear(16) -> relu -> [dropout] -> linear, with
    penultimate ``features``. Batches are ``(x, y, ...)``."""

    def __init__(self, num_classes: int = 4, in_dim: int = 64, dropout: float = 0.0, lr: float = 0.05):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, 16), nn.ReLU())
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(16, num_classes)
        self.lr = lr

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.drop(self.body(x)))

    def training_step(self, batch, batch_idx):
        if isinstance(batch, dict):  # ActivePoolDataModule(unlabeled_stream=True)
            pool = self.trainer.datamodule
            labeled = pool.labeled_round >= 0
            if not labeled[batch["labeled"][2].cpu()].all() or labeled[batch["unlabeled"][2].cpu()].any():
                raise AssertionError("the unlabeled stream mixed labeled and unlabeled samples")
            self.unlabeled_batches = getattr(self, "unlabeled_batches", 0) + 1
            batch = batch["labeled"]
        return F.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class KeepSideModule(TinyModule):
    """TinyModule plus a ``side`` child (with a buffer) that ActiveLearning's reset must keep, each
    part with its own Adam optimizer (manual optimization)."""

    keep_across_rounds = ("side",)

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.side = nn.Linear(4, 4)
        self.side.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def training_step(self, batch, batch_idx):
        opt_main, opt_side = self.optimizers()
        loss = F.cross_entropy(self(batch[0]), batch[1])
        opt_main.zero_grad()
        self.manual_backward(loss)
        opt_main.step()
        side_loss = (self.side(torch.ones(1, 4, device=self.device)) - 1).pow(2).sum()
        opt_side.zero_grad()
        self.manual_backward(side_loss)
        opt_side.step()
        self.side.steps += 1
        return loss.detach()

    def configure_optimizers(self):
        main = [p for name, p in self.named_parameters() if not name.startswith("side.")]
        return [torch.optim.Adam(main, lr=self.lr), torch.optim.Adam(self.side.parameters(), lr=self.lr)]


def synthetic_pool(num_train: int = 101, initial: int = 10, seed: int = 0, augment: bool = False,
                   **kwargs) -> ActivePoolDataModule:
    dm = SyntheticDataModule(num_train=num_train, num_test=40, num_classes=4, image_size=8, batch_size=16,
                             val_size=0.1, noise=0.6, augment=augment)
    return ActivePoolDataModule(dm, initial_labeled=initial, seed=seed, **kwargs)


# ---- a fake pool with fixed logits / features, for exact strategy tests ------------------------------
class IdDataset(Dataset):
    """Sample ``i`` is ``(tensor([i.]), 0, pool_index[i])``."""

    def __init__(self, pool_indices: torch.Tensor):
        self.pool_indices = pool_indices

    def __len__(self):
        return len(self.pool_indices)

    def __getitem__(self, i):
        p = int(self.pool_indices[i])
        return torch.tensor([float(p)]), 0, p


class NoFeaturesModule(TinyModule):
    """The same module without penultimate features (core-set must refuse it clearly)."""

    features = None


class TableModule(nn.Module):
    """``forward(x) = logits[x]`` and ``features(x) = feats[x]`` where ``x`` holds pool indices."""

    def __init__(self, logits: torch.Tensor, feats: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("logits", logits.float())
        if feats is not None:
            self.register_buffer("feats", feats.float())
            self.features = lambda x: self.feats[x[:, 0].long()]
        self.anchor = nn.Parameter(torch.zeros(()))  # so .parameters() is not empty

    def forward(self, x):
        return self.logits[x[:, 0].long()] + 0 * self.anchor


class TablePool:
    """Minimal pool API over ``n`` ids with a given labeled set."""

    def __init__(self, n: int, labeled=(), batch_size: int = 7):
        self.labeled_round = torch.full((n,), -1, dtype=torch.long)
        self.labeled_round[torch.as_tensor(list(labeled), dtype=torch.long)] = 0
        self.batch_size = batch_size

    @property
    def num_train(self):
        return len(self.labeled_round)

    @property
    def labeled_indices(self):
        return (self.labeled_round >= 0).nonzero().squeeze(1)

    @property
    def unlabeled_indices(self):
        return (self.labeled_round < 0).nonzero().squeeze(1)

    @property
    def num_labeled(self):
        return len(self.labeled_indices)

    @property
    def num_unlabeled(self):
        return len(self.unlabeled_indices)

    def unlabeled_dataloader(self):
        return DataLoader(IdDataset(self.unlabeled_indices), batch_size=self.batch_size)

    def labeled_dataloader(self, train: bool = False):
        return DataLoader(IdDataset(self.labeled_indices), batch_size=self.batch_size)


# ---- callbacks used by the resume / DDP tests ----------------------------------------------------
class CrashAt(L.Callback):
    """Raises at the end of epoch ``epoch`` (place it after ActiveLearning, before the checkpoint)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("planned crash")


class CrashAtStep(L.Callback):
    """Raises after training step ``step`` (counted from 1) of epoch ``epoch``: a kill mid-round."""

    def __init__(self, epoch: int, step: int):
        self.epoch, self.step = epoch, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx + 1 == self.step:
            raise RuntimeError("planned crash")


class MetricStrategy(EntropyStrategy):
    """Entropy, reporting the sum of its picks' pool indices as a round metric."""

    def __init__(self):
        self.sums = []

    def select(self, trainer, module, pool, budget):
        picked = super().select(trainer, module, pool, budget)
        self.sums.append(float(picked.sum()))
        return picked

    def round_metrics(self):
        return {"picked_sum": self.sums[-1]}


class CrashingStrategy(QueryStrategy):
    """Delegates to ``inner`` but raises on call number ``crash_on`` (counted from 1): a kill mid-query."""

    def __init__(self, inner: QueryStrategy, crash_on: int):
        self.inner, self.crash_on, self.calls = inner, crash_on, 0

    def settings(self):  # transparent: a resumed run continues with the inner strategy
        return self.inner.settings()

    def round_metrics(self):
        return self.inner.round_metrics()

    def select(self, trainer, module, pool, budget):
        self.calls += 1
        if self.calls == self.crash_on:
            pool.label(pool.unlabeled_indices[:1], round=99)  # a partial label that must not survive
            raise RuntimeError("killed mid-query")
        return self.inner.select(trainer, module, pool, budget)


def ddp_selection_extra(trainer, module):
    """Per rank: the pool state and the entropy / core-set selections on the final model (sharded)."""
    pool = trainer.datamodule
    return {
        "labeled_round": pool.labeled_round.clone(),
        "entropy": EntropyStrategy().select(trainer, module, pool, 7),
        "coreset": CoresetStrategy().select(trainer, module, pool, 7),
        "bald": BALDStrategy(samples=5).select(trainer, module, pool, 7),  # consistent masks on every rank
        "stochastic": StochasticBatchStrategy(EntropyStrategy(), seed=3).select(trainer, module, pool, 7),
        "unlabeled_batches": getattr(module, "unlabeled_batches", 0),
    }

