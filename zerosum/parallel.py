"""Keeping DDP ranks in step: the one home of every cross-rank operation in zerosum.

Everything here is a no-op on a single process, so callers never branch on the world size.

- :func:`average_gradients`: the mean of a player's gradients over ranks, one flat all-reduce.
  The game loop (:class:`zerosum.modules.Game`) calls it for games with several players, whose
  updates run outside DDP's reducer (DDP syncs one backward per forward over all parameters; a game
  runs one backward per player, each over its own parameters).
- :func:`sync_buffers`: **rank 0's buffers on every rank** (BatchNorm statistics, step counters).
  This is DDP's own buffer rule (it broadcasts rank 0's buffers at every forward), so a module synced
  by hand ends a step exactly as DDP would start the next one, and evaluation and checkpoints see
  one set of statistics everywhere.
- :func:`all_reduce_mean`: in-place mean of tensors over ranks (per-class statistics, counters).
- :func:`gather_rows`: ``all_gather`` of per-rank shards of unequal length (padded, then cut).
- :func:`broadcast`: rank 0's object (a selection, a reward) on every rank.
- :func:`all_gather_with_grad`: every rank's rows, concatenated, with gradients flowing back to each
  rank's own rows (contrastive negatives from the global batch: SimCLR's NT-Xent).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def world_size() -> int:
    """Processes in the default group (1 when ``torch.distributed`` is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _unflatten_into(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
    offset = 0
    for t in tensors:
        t.data.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def all_reduce_mean(tensors: Iterable[Optional[torch.Tensor]]) -> None:
    """In-place mean of ``tensors`` over ranks, one flat all-reduce per dtype (``None`` entries skipped)."""
    world = world_size()
    tensors = [t for t in tensors if t is not None]
    if world == 1 or not tensors:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = _flatten(group)
        dist.all_reduce(flat)
        _unflatten_into(flat / world if flat.is_floating_point() else flat // world, group)


def average_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """The mean over ranks of the parameters' ``.grad`` (parameters without a gradient are skipped:
    which ones have one is the same on every rank, since every rank runs the same graph)."""
    all_reduce_mean(p.grad for p in parameters)


@torch.no_grad()
def sync_buffers(module: nn.Module, skip: Iterable[str] = ()) -> None:
    """Rank 0's buffers on every rank (DDP's rule), one broadcast per dtype; names in ``skip``
    (e.g. a module's ``_ddp_params_and_buffers_to_ignore``: state every rank updates identically)
    are left alone."""
    if world_size() == 1:
        return
    skip = set(skip)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for name, buf in module.named_buffers():
        if name not in skip:
            by_dtype.setdefault(buf.dtype, []).append(buf)
    for group in by_dtype.values():
        flat = _flatten(group)
        dist.broadcast(flat, src=0)
        _unflatten_into(flat, group)


def ddp_wrapper(trainer) -> Optional[DistributedDataParallel]:
    """The trainer's ``DistributedDataParallel`` wrapper of the module, if it has one."""
    model = getattr(getattr(trainer, "strategy", None), "model", None) if trainer is not None else None
    return model if isinstance(model, DistributedDataParallel) else None


@contextlib.contextmanager
def outside_ddp_reducer(trainer) -> Iterator[None]:
    """Backward passes inside do not trigger DDP's gradient all-reduce (``no_sync``)."""
    ddp = ddp_wrapper(trainer)
    with ddp.no_sync() if ddp is not None else contextlib.nullcontext():
        yield


def _trainer_world(trainer) -> int:
    return int(trainer.world_size) if trainer is not None else 1


def broadcast(trainer, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself on a single process or without a trainer)."""
    if _trainer_world(trainer) > 1:
        return trainer.strategy.broadcast(obj, src=0)
    return obj


def gather_rows(trainer, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's rows of ``tensors`` (same row count per rank, which may differ across ranks),
    concatenated in rank order, on the CPU and identical on every rank. Rows are padded to the largest
    count for ``all_gather`` (which needs equal shapes) and the padding is cut afterwards. Trailing
    dimensions may differ across ranks only where a rank has no rows (its width is then taken from
    the others)."""
    if _trainer_world(trainer) == 1:
        return tuple(t.cpu() for t in tensors)
    strategy = trainer.strategy
    device = strategy.root_device
    n = len(tensors[0])
    counts = strategy.all_gather(torch.tensor([n], device=device)).reshape(-1).cpu()
    m = int(counts.max())
    out = []
    for t in tensors:
        width = torch.tensor(list(t.shape[1:]) if n else [0] * (t.dim() - 1), device=device, dtype=torch.long)
        shape = tuple(int(s) for s in strategy.all_gather(width).reshape(len(counts), -1).max(0).values) if t.dim() > 1 else ()
        padded = torch.zeros((m, *shape), dtype=t.dtype, device=device)
        padded[:n] = t.to(device)
        gathered = strategy.all_gather(padded).reshape(-1, *shape).cpu()
        out.append(gathered)
    valid = torch.cat([torch.arange(m) < c for c in counts])
    return tuple(g[valid] for g in out)


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward sums, over ranks, the gradients of every rank's loss with respect
    to this rank's rows (the gather layer of solo-learn and lightly)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor):
        out = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(out, tensor.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        stacked = torch.stack(grads)
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (equal shapes on all ranks) concatenated in rank order along dim 0,
    differentiable: with each rank's loss built on the gathered rows and the usual mean of gradients
    over ranks, the parameters get the gradient of the mean of the ranks' losses. ``tensor`` itself on
    a single process."""
    if world_size() == 1:
        return tensor
    return torch.cat(_GatherWithGrad.apply(tensor))
