"""Standard supervised classifier: the baseline every game in zerosum is compared against."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import build_net
from zerosum.optim import spec


class Classifier(LogitsEvaluation, Game):
    """Cross-entropy training of ``net`` (a name from :mod:`zerosum.nets`): a game of one player.

    Args:
        num_classes / in_channels: linked from the datamodule by the CLI.
        net / net_args: the network and its extra options.
        optimizer / scheduler: callables from YAML (``class_path``/``init_args``); the scheduler is
            stepped per epoch unless ``scheduler_interval: step``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: str = "small_cnn",
        net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-3),
        scheduler: Optional[LRSchedulerCallable] = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.net: nn.Module = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.add_player("net", "net", optimizer, scheduler, scheduler_interval)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.init_accuracy(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (see :class:`zerosum.nets.FeatureClassifier`)."""
        return self.net.features(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        logits = self(x)
        loss = self.play("net", F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing))
        self.train_acc(logits.detach(), y)
        log_step(self, {"train/loss": loss}, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss
