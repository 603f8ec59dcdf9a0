"""Running a module over data outside training: the engine shared by query strategies (scoring a
pool) and callbacks (evaluating at a round's end).

:func:`map_pool` runs ``fn(module, batch)`` over a loader's dataset with the module in eval mode and
without gradients (train/eval flags of every submodule are restored afterwards), outside Lightning's
``inference_mode`` (so the results are ordinary tensors even when called from a validation hook).
Under DDP every rank maps ``ceil(N / world)`` samples (``DistributedSampler`` order, padded by
repeating samples), the per-rank results are gathered (:func:`zerosum.parallel.gather_rows`), the
padding duplicates are dropped and the rows are sorted by dataset position: every rank returns the
same tensors, equal to the single-process result.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from zerosum.parallel import gather_rows


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
    local, local_pos, local_idx = gather_rows(trainer if world > 1 else None, local, local_pos, local_idx)
    order = torch.argsort(local_pos, stable=True)
    local, local_pos, local_idx = local[order], local_pos[order], local_idx[order]
    keep = torch.ones(len(local_pos), dtype=torch.bool)
    keep[1:] = local_pos[1:] != local_pos[:-1]  # drop DistributedSampler's padding duplicates
    out = local[keep]
    if out.shape[1] == 1:
        out = out.squeeze(1)
    return out, local_pos[keep], local_idx[keep]


def evaluate_accuracy(trainer: Optional[L.Trainer], module: nn.Module, loader) -> dict[str, float]:
    """Accuracy and cross-entropy of ``module(x)`` logits over ``loader`` (sharded, gathered)."""

    def per_sample(m, batch):
        logits = m(batch[0])
        y = batch[1]
        return torch.stack([(logits.argmax(1) == y).float(), F.cross_entropy(logits.float(), y, reduction="none")], 1)

    out, _, _ = map_pool(trainer, module, loader, per_sample)
    out = out.reshape(-1, 2)
    return {"acc": float(out[:, 0].mean()), "loss": float(out[:, 1].mean())}
