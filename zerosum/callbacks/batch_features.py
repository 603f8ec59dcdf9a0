"""What the representation callbacks (linear probe, kNN monitor, mask pictures) read off a batch:
its images and the features the module computed (or would compute) for them."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


def batch_images(batch) -> torch.Tensor:
    """The images of a batch; of a multi-view batch, the first view."""
    x = batch[0]
    return x[0] if isinstance(x, (list, tuple)) else x


def step_features(pl_module: L.LightningModule, outputs: Any, batch) -> torch.Tensor:
    """Detached features of a batch: ``outputs["features"]`` when the step returned them (no extra
    forward), else ``pl_module.features(x)`` under ``no_grad``."""
    if isinstance(outputs, dict) and outputs.get("features") is not None:
        return outputs["features"].detach()
    if not hasattr(pl_module, "features"):
        raise AttributeError(f"{type(pl_module).__name__} has no features(x) and its step returns no 'features'")
    with torch.no_grad():
        return pl_module.features(batch_images(batch)).detach()
