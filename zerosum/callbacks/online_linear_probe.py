"""Online linear probe: a linear classifier trained on detached features while any self-supervised
module trains (the SimCLR/BYOL/ADIOS "online classifier"), with its own optimizer stepped here.

Works with any LightningModule whose batches are ``(x, y, ...)``: features come from ``feature_fn``
(a method or submodule of the module), the step's ``{"features": h}`` output, or ``features(x)``
(see :mod:`zerosum.callbacks.batch_features`); the number of classes from ``num_classes``, the
datamodule's ``num_classes`` or the module's ``hparams.num_classes``."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from zerosum.callbacks.batch_features import batch_labels, step_features
from zerosum.parallel import average_gradients


class OnlineLinearProbe(L.Callback):
    """Trains ``Linear(feature_dim, num_classes)`` on every training batch's detached features
    (samples with label < 0, e.g. STL-10's unlabeled split, are ignored) and logs
    ``probe/train_acc``, ``probe/val_acc`` and ``probe/test_acc``. The probe's gradients are averaged
    over DDP ranks, so its weights stay identical everywhere. The encoder never sees its loss.

    Args:
        num_classes: default: the datamodule's ``num_classes``, else the module's ``hparams.num_classes``.
        lr: learning rate of the probe's SGD.
        momentum: momentum of the probe's SGD.
        weight_decay: weight decay of the probe's SGD.
        seed: seed of the probe's initialisation (the same on every rank).
        feature_fn: name of a method or submodule of the module giving ``(batch, d)`` features
            (default: the step's ``"features"`` output, else ``features(x)``).
    """

    def __init__(self, num_classes: Optional[int] = None, lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 0.0, seed: int = 0, feature_fn: Optional[str] = None):
        if lr <= 0:
            raise ValueError(f"lr: {lr}; allowed: a positive learning rate")
        self.num_classes, self.lr, self.momentum, self.weight_decay, self.seed = num_classes, lr, momentum, weight_decay, seed
        self.feature_fn = feature_fn
        self.linear: Optional[nn.Linear] = None
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self._pending_state: Optional[dict] = None
        self._counts: dict[str, torch.Tensor] = {}

    def _ensure(self, trainer: L.Trainer, dim: int, device: torch.device) -> nn.Linear:
        if self.linear is None:
            hparams = getattr(trainer.lightning_module, "hparams", None) or {}
            classes = self.num_classes or getattr(trainer.datamodule, "num_classes", None) or hparams.get("num_classes")
            if not classes:
                raise ValueError("num_classes: OnlineLinearProbe does not know the number of classes; allowed: "
                                 "OnlineLinearProbe(num_classes=...), a num_classes attribute on the datamodule, or "
                                 "num_classes among the module's hyperparameters")
            fork = torch.random.fork_rng(devices=[])
            with fork:
                torch.manual_seed(self.seed)
                self.linear = nn.Linear(dim, classes)
            self.linear.to(device)
            self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=self.lr, momentum=self.momentum,
                                             weight_decay=self.weight_decay)
            if self._pending_state is not None:
                self.linear.load_state_dict(self._pending_state["linear"])
                self.optimizer.load_state_dict(self._pending_state["optimizer"])
                self._pending_state = None
        return self.linear

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        h = step_features(pl_module, outputs, batch, self.feature_fn, "OnlineLinearProbe").float()
        y = batch_labels(batch).to(h.device)
        linear = self._ensure(trainer, h.shape[1], h.device)
        keep = y >= 0
        with torch.enable_grad(), torch.inference_mode(False):
            logits = linear(h.clone())
            loss = F.cross_entropy(logits[keep], y[keep]) if keep.any() else 0.0 * logits.sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        average_gradients(linear.parameters())
        self.optimizer.step()
        if keep.any():
            acc = (logits.detach()[keep].argmax(1) == y[keep]).float().mean()
            pl_module.log_dict({"probe/train_loss": loss.detach(), "probe/train_acc": acc}, on_step=False, on_epoch=True,
                              sync_dist=True)  # mean over ranks

    def _eval_batch(self, stage, trainer, pl_module, outputs, batch) -> None:
        h = step_features(pl_module, outputs, batch, self.feature_fn, "OnlineLinearProbe").float()
        y = batch_labels(batch).to(h.device)
        linear = self._ensure(trainer, h.shape[1], h.device)
        keep = y >= 0
        with torch.no_grad():
            correct = (linear(h)[keep].argmax(1) == y[keep]).sum()
        counts = self._counts.setdefault(stage, torch.zeros(2, device=h.device))
        counts += torch.stack([correct.float(), keep.sum().float()])

    def _eval_end(self, stage, trainer, pl_module) -> None:
        counts = self._counts.pop(stage, None)
        if counts is None or trainer.sanity_checking:
            return
        counts = trainer.strategy.reduce(counts, reduce_op="sum")
        if counts[1] > 0:
            pl_module.log(f"probe/{stage}_acc", counts[0] / counts[1], prog_bar=True, sync_dist=True)  # equal on all ranks

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval_batch("val", trainer, pl_module, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval_batch("test", trainer, pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._eval_end("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._eval_end("test", trainer, pl_module)

    def state_dict(self) -> dict:
        if self.linear is None:
            return {}
        return {"linear": self.linear.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self._pending_state = state_dict
