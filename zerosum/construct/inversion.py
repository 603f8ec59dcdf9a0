"""Representation inversion, Ilyas et al. Eq. (6): ``min_{x_r} ||g(x_r) - g(x)||_2``.

Gradient descent in input space with normalised L2 steps (step 0.1, 1000 iterations in the paper)
and the pixel box, started from another image ``x0``; ``g`` is the penultimate layer
(``features`` of a :class:`zerosum.nets.FeatureClassifier`). It is :func:`zerosum.attacks.pgd`
with an infinite radius, a feature-distance loss and ``targeted=True`` (descent).

``fake_relu``: the official tooling (MadryLab/robustness, ``model(x, with_latent=True,
fake_relu=True)`` in its representation-inversion walkthrough and ``cifar_models/resnet.py``) lets
the gradient pass through the last ReLU before the representation as if it were the identity, so
features that are 0 at the start image still pull the optimisation toward the target.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from zerosum.attacks import pgd

#: modules that may follow the last ReLU of a backbone without changing where it is applied
_AFTER_RELU = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity,
               nn.Dropout)


class FakeReLU(torch.autograd.Function):
    """ReLU forward, identity backward."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def final_relu(net: nn.Module) -> nn.ReLU:
    """The ``nn.ReLU`` module whose output (pooled, flattened) is ``net.features``; refuses nets whose
    last ReLU is a function call (it cannot be replaced from outside)."""
    inner = getattr(net, "net", net)  # zerosum.nets.Normalized wraps the classifier
    module = getattr(inner, "backbone", None)
    while isinstance(module, nn.Sequential):
        last = len(module) - 1
        while last >= 0 and isinstance(module[last], _AFTER_RELU):  # pooling after a ReLU commutes with it
            last -= 1
        if last < 0:
            break
        module = module[last]
        if isinstance(module, nn.ReLU):
            return module
    raise ValueError(f"fake_relu: {type(inner).__name__} does not end its features with an nn.ReLU module; allowed: "
                     "fake_relu: false, or a net whose backbone is an nn.Sequential ending in nn.ReLU and pooling "
                     "(small_cnn, preact_resnet18, vgg16_bn)")


@contextlib.contextmanager
def fake_relu(net: nn.Module) -> Iterator[None]:
    """Within the block, the final ReLU of ``net``'s features passes gradients as the identity."""
    relu = final_relu(net)
    relu.forward = FakeReLU.apply  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        del relu.forward


class Representation(nn.Module):
    """``g(x)``: ``net.features(x)`` (the penultimate layer, the paper's choice), or the flattened output
    of the submodule ``layer`` of the classifier (a dotted name such as ``backbone.5``: a wider,
    spatial representation for small CPU-scale networks)."""

    def __init__(self, net: nn.Module, layer: Optional[str] = None):
        super().__init__()
        self.net, self.layer = net, layer
        self._target = None
        if layer is not None:
            inner = getattr(net, "net", net)  # zerosum.nets.Normalized wraps the classifier
            try:
                self._target = inner.get_submodule(layer)
            except AttributeError as err:
                names = [n for n, _ in inner.named_modules() if n and n.count(".") < 2][:12]
                raise ValueError(f"representation: {type(inner).__name__} has no submodule {layer!r}; allowed: null "
                                 f"(penultimate features) or one of {', '.join(names)}, ...") from err

    def forward(self, x: Tensor) -> Tensor:
        if self._target is None:
            return self.net.features(x)
        captured = []
        handle = self._target.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            self.net.features(x)
        finally:
            handle.remove()
        return captured[-1].flatten(1)


def feature_distance(output: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``||g(x_r) - g(x)||_2`` (the objective of Eq. 6)."""
    return (output - target).flatten(1).norm(dim=1)


def invert_representation(net: nn.Module, x: Tensor, x_init: Tensor, *, step_size: float = 0.1, steps: int = 1000,
                          keep_best: bool = True, clamp: Optional[tuple[float, float]] = (0.0, 1.0),
                          use_fake_relu: bool = False, layer: Optional[str] = None) -> Tensor:
    """Images whose representation (:class:`Representation`; the penultimate features by default)
    matches that of ``x``, found from ``x_init`` (Eq. 6).

    Fixed-length normalised steps end up oscillating around the optimum, so by default the iterate
    with the smallest distance is returned (``keep_best``). ``use_fake_relu``: see the module doc."""
    was_training = net.training
    g = Representation(net, layer).train(was_training)  # pgd restores g's mode, hence net's
    net.eval()
    try:
        with torch.inference_mode(False), torch.no_grad():
            target = g(x.detach().clone())
    finally:
        net.train(was_training)
    # pgd measures the (infinite) ball around its x: start there from x_init
    with fake_relu(net) if use_fake_relu else contextlib.nullcontext():
        return pgd(g, x_init, target, eps=math.inf, step_size=step_size, steps=steps, norm="l2",
                   loss_fn=feature_distance, targeted=True, keep_best=keep_best, clamp=clamp)
