"""Cross-rank averaging for modules that take gradients with ``torch.autograd.grad``.

A meta step backpropagates twice per batch (meta loss into the meta-net, training loss into the
classifier), which DDP's one-backward-per-forward reducer does not allow. Modules that do this take
gradients with ``torch.autograd.grad`` (DDP's hooks stay silent) and average them here, which is
what DDP would have done; BatchNorm running statistics are averaged the same way at epoch end.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_mean(tensors: Sequence[torch.Tensor]) -> None:
    """In-place mean of ``tensors`` across ranks (one flat all-reduce); no-op on a single process."""
    world = _world_size()
    tensors = [t for t in tensors if t is not None]
    if world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset: offset + n].view_as(t).to(t.dtype))
        offset += n


def set_grads(params: Iterable[torch.nn.Parameter], grads: Sequence[torch.Tensor | None]) -> None:
    """``p.grad = g`` (zeros for ``None``), then the mean over ranks."""
    params = list(params)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g.detach()
    all_reduce_mean([p.grad for p in params])


def average_buffers(module: nn.Module) -> None:
    """Mean of floating-point buffers (BatchNorm statistics) across ranks."""
    all_reduce_mean([b for b in module.buffers() if b.is_floating_point()])
