"""Representation inversion, Ilyas et al. Eq. (6): ``min_{x_r} ||g(x_r) - g(x)||_2``.

Gradient descent in input space with normalised L2 steps (step 0.1, 1000 iterations in the paper)
and the pixel box, started from another image ``x0``; ``g`` is the penultimate layer
(``features`` of a :class:`zerosum.nets.FeatureClassifier`). It is :func:`zerosum.attacks.pgd`
with an infinite radius, a feature-distance loss and ``targeted=True`` (descent).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from zerosum.attacks import pgd


class Representation(nn.Module):
    """``g(x) = net.features(x)`` as a module (so attacks can switch the net's mode)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.features(x)


def feature_distance(output: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``||g(x_r) - g(x)||_2`` (the objective of Eq. 6)."""
    return (output - target).flatten(1).norm(dim=1)


def invert_representation(net: nn.Module, x: Tensor, x_init: Tensor, *, step_size: float = 0.1, steps: int = 1000,
                          keep_best: bool = True, clamp: Optional[tuple[float, float]] = (0.0, 1.0)) -> Tensor:
    """Images whose penultimate features match those of ``x``, found from ``x_init`` (Eq. 6).

    Fixed-length normalised steps end up oscillating around the optimum, so by default the iterate
    with the smallest distance is returned (``keep_best``)."""
    was_training = net.training
    g = Representation(net).train(was_training)  # pgd restores g's mode, hence net's
    net.eval()
    try:
        with torch.inference_mode(False), torch.no_grad():
            target = g(x.detach().clone())
    finally:
        net.train(was_training)
    # pgd measures the (infinite) ball around its x: start there from x_init
    return pgd(g, x_init, target, eps=math.inf, step_size=step_size, steps=steps, norm="l2",
               loss_fn=feature_distance, targeted=True, keep_best=keep_best, clamp=clamp)
