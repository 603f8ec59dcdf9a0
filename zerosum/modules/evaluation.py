"""Evaluation shared by every module whose ``forward`` returns class logits."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy


class LogitsEvaluation:
    """Mixin (put it before ``LightningModule``): validation and test steps that log
    ``{val,test}/loss`` and ``{val,test}/acc`` of ``self(x)``, and a predict step whose rows
    (sample index, predicted label, class probabilities, true label) ``zerosum predict`` writes to
    ``<log dir>/predictions.csv`` (:class:`zerosum.callbacks.PredictionWriter`). Call
    :meth:`init_accuracy` in ``__init__``."""

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

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """``index`` (the batch's third element, else the running position on this rank), ``label``
        (argmax), ``probabilities`` (softmax) and, where the batch has labels, ``target``."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(x, (tuple, list)):  # several views of each image: predict from the first
            x = x[0]
        probs = torch.softmax(self(x).float(), dim=1)
        if isinstance(batch, (tuple, list)) and len(batch) > 2:
            index = torch.as_tensor(batch[2]).reshape(-1)
        else:
            start = getattr(self, "_predict_seen", 0) if batch_idx else 0
            index = torch.arange(start, start + len(x))
            self._predict_seen = start + len(x)
        out = {"index": index, "label": probs.argmax(dim=1), "probabilities": probs}
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            out["target"] = torch.as_tensor(batch[1]).reshape(-1)
        return out
