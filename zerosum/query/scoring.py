"""Scoring a pool, sharded over ranks: the shared engine of every strategy that scores samples.

:func:`map_pool` runs ``fn(module, batch)`` over a loader's dataset with the module in eval mode and
without gradients (train/eval flags of every submodule are restored afterwards), outside Lightning's
``inference_mode`` (so the results are ordinary tensors even when called from a validation hook).
Under DDP every rank scores ``ceil(N / world)`` samples (``DistributedSampler`` order, padded by
repeating samples), per-rank results are padded to equal length and ``all_gather``-ed, the padding
duplicates are dropped and the rows are sorted by dataset position: every rank returns the same
tensors, equal to the single-process result.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn
from torch.utils.data import DataLoader

from zerosum.query.base import QueryStrategy, top_k


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside; every submodule's ``training`` flag restored on exit."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def outside_inference_mode(grad: bool = False) -> Iterator[None]:
    """Leave Lightning's validation ``inference_mode`` (and choose whether gradients are on)."""
    with torch.inference_mode(False), torch.set_grad_enabled(grad):
        yield


def _world(trainer: Optional[L.Trainer]) -> tuple[int, int]:
    if trainer is None:
        return 1, 0
    return int(trainer.world_size), int(trainer.global_rank)


def map_pool(
    trainer: Optional[L.Trainer], module: nn.Module, loader: DataLoader, fn: Callable[[nn.Module, tuple], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``fn(module, batch) -> (B,) or (B, d)`` over ``loader.dataset``, sharded and gathered.

    Returns ``(outputs, positions, pool_indices)`` sorted by ``positions`` (positions in
    ``loader.dataset``); ``pool_indices`` is the batch's third element when batches carry one
    (zerosum's ``(x, y, index)``), else the position. Identical on every rank.
    """
    with outside_inference_mode(grad=False):
        return _map_pool(trainer, module, loader, fn)


def _map_pool(trainer, module, loader, fn):
    world, rank = _world(trainer)
    n = len(loader.dataset)
    if world > 1:
        per_rank = -(-n // world)
        padded = torch.arange(per_rank * world) % max(n, 1)
        positions = padded[rank::world] if n else torch.zeros(0, dtype=torch.long)
    else:
        positions = torch.arange(n)
    batch_size = loader.batch_size or 256
    dl = DataLoader(loader.dataset, batch_size=batch_size, sampler=positions.tolist(), num_workers=loader.num_workers,
                    collate_fn=loader.collate_fn, pin_memory=loader.pin_memory)
    device = getattr(module, "device", None) or next(module.parameters()).device
    outs, pool_idx = [], []
    with eval_mode(module):
        start = 0
        for batch in dl:
            bsz = len(batch[0])
            batch_pos = positions[start:start + bsz]
            start += bsz
            pool_idx.append(torch.as_tensor(batch[2]).long().cpu() if len(batch) > 2 else batch_pos)
            out = fn(module, move_data_to_device(batch, device))
            outs.append(out.detach().float().reshape(bsz, -1))
    if outs:
        local = torch.cat(outs)
        local_idx = torch.cat(pool_idx)
    else:
        local = torch.zeros(0, 1, device=device)
        local_idx = torch.zeros(0, dtype=torch.long)
    local_pos = positions[: len(local)]
    if world > 1:
        local, local_pos, local_idx = _gather(trainer, local, local_pos, local_idx)
    local = local.cpu()
    order = torch.argsort(local_pos, stable=True)
    local, local_pos, local_idx = local[order], local_pos[order], local_idx[order]
    keep = torch.ones(len(local_pos), dtype=torch.bool)
    keep[1:] = local_pos[1:] != local_pos[:-1]  # drop DistributedSampler's padding duplicates
    out = local[keep]
    if out.shape[1] == 1:
        out = out.squeeze(1)
    return out, local_pos[keep], local_idx[keep]


def _gather(trainer: L.Trainer, values: torch.Tensor, pos: torch.Tensor, idx: torch.Tensor):
    """all_gather rows of unequal count: pad to the largest count, gather, cut."""
    strategy = trainer.strategy
    device = strategy.root_device
    count = torch.tensor([len(values)], device=device)
    counts = strategy.all_gather(count).reshape(-1).cpu()
    width = torch.tensor([values.shape[1] if len(values) else 0], device=device)
    d = int(strategy.all_gather(width).max())
    m = int(counts.max())
    pad_v = torch.zeros(m, d, device=device)
    pad_v[: len(values)] = values.to(device)
    pad_p = torch.full((m,), -1, dtype=torch.long, device=device)
    pad_p[: len(pos)] = pos.to(device)
    pad_i = torch.full((m,), -1, dtype=torch.long, device=device)
    pad_i[: len(idx)] = idx.to(device)
    all_v, all_p, all_i = (strategy.all_gather(t).reshape(-1, *t.shape[1:]).cpu() for t in (pad_v, pad_p, pad_i))
    valid = torch.cat([torch.arange(m) < c for c in counts])
    return all_v[valid], all_p[valid], all_i[valid]


def score_pool(
    trainer: Optional[L.Trainer], module: nn.Module, loader: DataLoader, score_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``score_fn(module, x)`` for every sample of ``loader``: ``(scores, pool_indices)``, sharded
    over ranks and gathered (see :func:`map_pool`); the same global order on every rank."""
    scores, _, pool_indices = map_pool(trainer, module, loader, lambda m, batch: score_fn(m, batch[0]))
    return scores, pool_indices


def module_features(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module's penultimate-feature function: ``module.features`` or ``module.net.features``."""
    for owner in (module, getattr(module, "net", None)):
        fn = getattr(owner, "features", None)
        if callable(fn):
            return fn
    raise AttributeError(
        f"{type(module).__name__} exposes no penultimate features: define `features(x) -> (B, d)` on the "
        "LightningModule, or give it a `net` with `features` (every zerosum.nets classifier has one)"
    )


class ScoringStrategy(QueryStrategy):
    """Label the ``budget`` highest-scoring unlabeled samples. Subclasses implement
    :meth:`score_batch` (``(B,)``, higher = label first); it runs in eval mode without gradients."""

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, trainer: Optional[L.Trainer], module: nn.Module, pool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, pool_indices)`` of the whole unlabeled pool."""
        return score_pool(trainer, module, pool.unlabeled_dataloader(), self.score_batch)

    def select(self, trainer, module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        scores, indices = self.score(trainer, module, pool)
        return top_k(scores, indices, budget)
