"""The virtual ("look-ahead") optimiser step of Meta-Weight-Net style meta-learning.

CAAT (Zhou et al. 2023, Sec. 5, Eq. 11-12) updates its meta-net by differentiating the loss on a
clean meta batch *after* one step of the classifier taken with the current per-sample weights:

    theta'(phi) = theta - lr * SGD_direction( grad_theta  L_train(theta; w(phi)) )      (Eq. 11)
    phi <- phi - lr_meta * grad_phi  L_meta(theta'(phi))                              (Eq. 12)

:func:`virtual_sgd_step` takes that step *functionally* (new tensors, nothing written to the model)
with exactly the real ``torch.optim.SGD``'s rule, reading learning rate, momentum (with its current
buffer), dampening, Nesterov and weight decay from the real optimizer, so ``theta'`` is what the
real optimizer would produce. :func:`functional_forward` evaluates the model at ``theta'`` with
``torch.func.functional_call`` (buffers included: pass copies to leave BatchNorm statistics alone).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call


def _unwrap(optimizer) -> torch.optim.Optimizer:
    """A Lightning ``LightningOptimizer`` wraps the torch optimizer as ``.optimizer``."""
    return getattr(optimizer, "optimizer", optimizer)


def virtual_sgd_step(
    params: Mapping[str, Tensor], grads: Sequence[Optional[Tensor]], optimizer,
) -> dict[str, Tensor]:
    """One ``torch.optim.SGD`` step as a differentiable function of ``grads``.

    Args:
        params: name -> parameter (the tensors the optimizer holds, in the order of ``grads``).
        grads: their gradients, typically from ``torch.autograd.grad(..., create_graph=True)``;
            ``None`` leaves a parameter unchanged (as SGD skips parameters without a gradient).
        optimizer: the real ``torch.optim.SGD`` (or a Lightning wrapper of it) whose hyperparameters
            and momentum buffers define the step.

    Returns:
        name -> updated tensor, differentiable with respect to ``grads``; the optimizer's state
        is not modified.
    """
    optimizer = _unwrap(optimizer)
    if not isinstance(optimizer, torch.optim.SGD):
        raise TypeError(f"virtual_sgd_step reproduces torch.optim.SGD only; the optimizer is {type(optimizer).__name__}. "
                        "Configure the classifier's optimizer as torch.optim.SGD.")
    if len(grads) != len(params):
        raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    updated: dict[str, Tensor] = {}
    for (name, p), g in zip(params.items(), grads):
        group = group_of.get(id(p))
        if group is None:
            raise ValueError(f"parameter {name!r} is not managed by the optimizer")
        if g is None:
            updated[name] = p
            continue
        if group.get("maximize", False):
            g = -g
        wd, momentum = group["weight_decay"], group["momentum"]
        if wd != 0:
            g = g + wd * p
        if momentum != 0:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            buf = g if buf is None else momentum * buf + (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        updated[name] = p - group["lr"] * g
    return updated


def functional_forward(module: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                       *args, **kwargs):
    """``module(*args)`` evaluated at ``params`` and ``buffers`` (``torch.func.functional_call``)."""
    return functional_call(module, ({**params, **buffers},), args, kwargs, strict=False)


def copied_buffers(module: nn.Module) -> dict[str, Tensor]:
    """Clones of ``module``'s buffers, so a virtual forward in train mode leaves BatchNorm's running
    statistics of the real model untouched."""
    return {name: b.detach().clone() for name, b in module.named_buffers()}


class AtParameters(nn.Module):
    """``module`` evaluated at ``params`` / ``buffers`` as a module of its own, so that attacks (which
    switch a model's mode and take input gradients) can run on the virtual model ``f_{theta'}``.
    Its mode is ``module``'s at creation; switching it switches ``module``'s."""

    def __init__(self, module: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor]):
        super().__init__()
        self.module = module
        self.params, self.buffer_values = dict(params), dict(buffers)
        self.training = module.training

    def forward(self, *args, **kwargs):
        return functional_forward(self.module, self.params, self.buffer_values, *args, **kwargs)
