"""Batch-norm statistics per group: several batches through a network in one pass, each normalised as
if it had gone through alone.

ADIOS's reference code encodes the clean view and each of the N masked views in separate encoder
calls, so in training mode every BatchNorm layer normalises each of them with its own batch
statistics. Encoding all of them in one call is faster but would pool the statistics of all views.
Inside :func:`batch_norm_per_group` every BatchNorm layer in training mode splits its input into the
groups and normalises each with the layer's own ``forward`` (so the outputs are those of separate
calls, and SyncBatchNorm still syncs per group); the convolutions and linear layers in between still
run on the whole batch. ``running_order`` replays the running-statistics updates in the order the
separate calls would have made them (a group may appear several times: the reference loop encodes
the clean view once per mask); repeated updates run without gradient.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Optional, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _grouped_forward(layer: _BatchNorm, original, groups: int, order: Sequence[int]):
    def forward(x: torch.Tensor) -> torch.Tensor:
        if not layer.training:
            return original(x)
        if x.shape[0] % groups:
            raise ValueError(f"groups: a batch of {x.shape[0]} rows does not split into {groups} equal groups; "
                             f"allowed: a divisor of the batch")
        chunks = x.chunk(groups)
        out: list[Optional[torch.Tensor]] = [None] * groups
        for g in order:
            if out[g] is None:
                out[g] = original(chunks[g])
            else:
                with torch.no_grad():
                    original(chunks[g])  # only the running-statistics update of a repeated call
        return torch.cat(out)  # type: ignore[arg-type]
    return forward


@contextlib.contextmanager
def batch_norm_per_group(modules: Iterable[nn.Module], groups: int,
                         running_order: Optional[Sequence[int]] = None) -> Iterator[None]:
    """Inside, BatchNorm layers of ``modules`` in training mode treat their input as ``groups`` equal
    consecutive groups of rows with separate batch statistics. ``running_order`` (default
    ``0 .. groups-1``) lists the groups in the order their running statistics are updated; every
    group must appear at least once."""
    if groups < 1:
        raise ValueError(f"groups: {groups}; allowed: an integer >= 1")
    order = list(range(groups)) if running_order is None else [int(g) for g in running_order]
    if set(order) != set(range(groups)):
        raise ValueError(f"running_order: {order}; allowed: indices 0..{groups - 1}, each at least once")
    layers = {id(m): m for module in modules for m in module.modules() if isinstance(m, _BatchNorm)}
    if groups == 1 and order == [0]:
        yield
        return
    patched = []
    try:
        for layer in layers.values():
            patched.append((layer, layer.__dict__.get("forward")))
            layer.forward = _grouped_forward(layer, layer.forward, groups, order)
        yield
    finally:
        for layer, before in patched:
            if before is None:
                del layer.forward  # back to the class's forward
            else:
                layer.forward = before
