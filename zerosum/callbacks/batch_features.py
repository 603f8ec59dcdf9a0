"""What the representation callbacks (linear probe, kNN monitor, mask pictures) read off a batch and
a module: the images, the labels and the features, from any LightningModule.

A batch is ``(x, y, ...)`` (zerosum's ``(x, y, index)`` or a plain ``(x, y)``); ``x`` may be a list of
views (the first is used). Features come, in this order, from

1. the callback's ``feature_fn``: the name of a method or submodule of the LightningModule that maps
   ``x`` to ``(batch, d)`` (dotted names reach inside: ``net.features``, ``backbone``);
2. the step's output ``{"loss": ..., "features": h}`` (no extra forward; zerosum's ADIOS returns it);
3. the module's ``features(x)`` method (every zerosum module has one).

Features a callback computes itself (1 and 3) are computed in eval mode without gradients: the extra
forward pass updates no BatchNorm statistics and draws no dropout, so the model trains exactly as it
would without the callback.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Optional

import lightning as L
import torch

from zerosum.inference import eval_mode


def batch_images(batch) -> torch.Tensor:
    """The images of a batch; of a multi-view batch, the first view."""
    x = batch[0]
    return x[0] if isinstance(x, (list, tuple)) else x


def batch_labels(batch) -> torch.Tensor:
    """The labels of a ``(x, y, ...)`` batch."""
    return torch.as_tensor(batch[1])


def feature_extractor(pl_module: L.LightningModule, feature_fn: Optional[str] = None,
                      who: str = "callback") -> Callable[[torch.Tensor], torch.Tensor]:
    """``pl_module.<feature_fn>`` if named, else ``pl_module.features``; an error that names the
    choices when neither exists."""
    if feature_fn:
        try:
            fn = operator.attrgetter(feature_fn)(pl_module)
        except AttributeError as err:
            raise ValueError(f"feature_fn: {type(pl_module).__name__} has no {feature_fn!r} ({err}); allowed: the "
                             f"name of a method or submodule of the module mapping x to (batch, d)") from err
        if not callable(fn):
            raise TypeError(f"feature_fn: {type(pl_module).__name__}.{feature_fn} is a {type(fn).__name__}, not "
                            "callable; allowed: the name of a method or submodule mapping x to (batch, d)")
        return fn
    fn = getattr(pl_module, "features", None)
    if not callable(fn):
        raise TypeError(
            f"feature_fn: {who} needs features and {type(pl_module).__name__} gives none; allowed: a features(x) "
            "method on the module, training_step/validation_step returning {'loss': ..., 'features': h}, or "
            f"{who}(feature_fn=...) naming a method or submodule that maps x to (batch, d), e.g. 'net.features'")
    return fn


def checked(h: torch.Tensor, who: str) -> torch.Tensor:
    if not isinstance(h, torch.Tensor) or h.dim() != 2:
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(f"feature_fn: {who} got features of shape {shape}; allowed: a (batch, d) tensor "
                         "(pool or flatten a feature map first)")
    return h


def step_features(pl_module: L.LightningModule, outputs: Any, batch, feature_fn: Optional[str] = None,
                  who: str = "callback") -> torch.Tensor:
    """Detached ``(B, d)`` features of a batch, from the sources of the module docstring."""
    if not feature_fn and isinstance(outputs, dict) and outputs.get("features") is not None:
        return checked(outputs["features"].detach(), who)
    fn = feature_extractor(pl_module, feature_fn, who)
    with torch.no_grad(), eval_mode(pl_module):
        return checked(fn(batch_images(batch)).detach(), who)
