"""Offline linear evaluation of a frozen self-supervised encoder (the standard protocol of SimCLR,
Chen et al. 2020, Sec. 4 and ADIOS, Shi et al. 2022, Sec. 4)."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.loading import load_module
from zerosum.ssl.export import load_encoder


def linear_sgd(params, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class LinearEval(L.LightningModule):
    """A linear classifier on the frozen ``features(x)`` of an exported encoder or of a checkpointed
    module (e.g. ADIOS).

    The encoder stays in eval mode (BatchNorm statistics frozen) and receives no gradient; only
    ``self.linear`` is trained (cross-entropy, cosine schedule over ``max_epochs``).

    Args:
        ckpt_path: a Lightning checkpoint of ``module_class`` (the whole module is loaded: for ADIOS
            also its occlusion net and a BYOL target); give this or ``encoder_path``.
        num_classes: linked from the datamodule.
        module_class: import path of the checkpoint's LightningModule (with ``ckpt_path``).
        optimizer: optimizer of the linear layer.
        cosine: cosine learning-rate schedule over the training steps.
        feature_norm: standardise the features with a parameter-free BatchNorm before the linear
            layer (as MAE's linear probing; cumulative statistics, momentum=None); still a linear classifier.
        encoder_path: the encoder alone, as ADIOS writes it at the end of training (``<log dir>/encoder.pt``,
            :func:`zerosum.ssl.save_encoder`); give this or ``ckpt_path``.
    """

    def __init__(self, ckpt_path: Optional[str] = None, num_classes: int = 10, module_class: str = "zerosum.modules.ADIOS",
                 optimizer: OptimizerCallable = linear_sgd, cosine: bool = True, feature_norm: bool = True,
                 encoder_path: Optional[str] = None):
        super().__init__()
        if (ckpt_path is None) == (encoder_path is None):
            raise ValueError(f"ckpt_path, encoder_path: {ckpt_path!r}, {encoder_path!r}; allowed: exactly one of them")
        self.save_hyperparameters(ignore=["optimizer"])
        self.backbone = load_encoder(encoder_path) if encoder_path else load_module(ckpt_path, module_class)
        if not hasattr(self.backbone, "features"):
            raise ValueError(f"{module_class} has no features(x) method to evaluate")
        self.backbone.requires_grad_(False).eval()
        with torch.no_grad():
            dim = self._probe_dim()
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=None) if feature_norm else nn.Identity()
        self.linear = nn.Linear(dim, num_classes)
        self.optimizer = optimizer
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def _probe_dim(self) -> int:
        if hasattr(self.backbone, "feature_dim"):
            return self.backbone.feature_dim
        enc = getattr(self.backbone, "encoder", None)
        if enc is not None and hasattr(enc, "feature_dim"):
            return enc.feature_dim
        hp = getattr(self.backbone, "hparams", {})
        x = torch.zeros(2, hp.get("in_channels", 3), hp.get("image_size", 32), hp.get("image_size", 32))
        return self.backbone.features(x).shape[1]

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = self.backbone.features(x)
        return self.linear(self.norm(h))

    def _step(self, batch, metric, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        if isinstance(x, (list, tuple)):
            x = x[0]
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metric(logits, y)
        self.log(f"{stage}/loss", loss, sync_dist=stage != "train", prog_bar=stage == "train")
        self.log(f"{stage}/acc", metric, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx: int):
        return self._step(batch, self.train_acc, "train")

    def validation_step(self, batch, batch_idx: int):
        self._step(batch, self.val_acc, "val")

    def test_step(self, batch, batch_idx: int):
        self._step(batch, self.test_acc, "test")

    predict_step = LogitsEvaluation.predict_step  # zerosum predict: <run>/predictions.csv

    def configure_optimizers(self):
        opt = self.optimizer(self.linear.parameters())
        if not self.hparams.cosine:
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
