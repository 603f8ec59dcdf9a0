"""Evaluation shared by every module whose ``forward`` returns class logits."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy


class LogitsEvaluation:
    """Mixin (put it before ``LightningModule``): validation, test and predict steps that log
    ``{val,test}/loss`` and ``{val,test}/acc`` of ``self(x)``. Call :meth:`init_accuracy` in ``__init__``."""

    def init_accuracy(self, num_classes: int) -> None:
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def _evaluate(self, batch, metric: MulticlassAccuracy, stage: str) -> None:
        x, y = batch[0], batch[1]
        logits = self(x)
        metric(logits, y)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log(f"{stage}/acc", metric, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_acc, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_acc, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0]).argmax(dim=1)
