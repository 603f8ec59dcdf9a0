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
from zerosum.nets import NetSpec, build_net
from zerosum.optim import spec


class Classifier(LogitsEvaluation, Game):
    """Cross-entropy training of ``net``: a game of one player.

    Args:
        num_classes: number of classes (linked from the datamodule by the CLI).
        in_channels: image channels (linked from the datamodule by the CLI).
        net: a zerosum net name (small_cnn, resnet18_cifar, ...), a dotted import path, a class_path/init_args mapping, or your nn.Module (see zerosum.nets.build_net).
        net_args: extra keyword arguments of the network's class.
        optimizer: optimizer callable from YAML (class_path/init_args).
        scheduler: learning-rate scheduler callable, or null.
        scheduler_interval: step the scheduler per "epoch" or per optimizer "step".
        label_smoothing: label smoothing of the cross-entropy.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: NetSpec = "small_cnn",
        net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-3),
        scheduler: Optional[LRSchedulerCallable] = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: {label_smoothing}; allowed: a value in [0, 1)")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval: {scheduler_interval!r}; allowed: epoch, step")
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
