"""TRADES (Zhang et al. 2019): the baseline whose regulariser CAAT's adversary uses.

``min_f E [ CE(f(x), y) + beta * max_{x' in B(x, eps)} KL(f(x) || f(x')) ]``  (TRADES Eq. 5).
The inner maximisation is :func:`zerosum.attacks.trades.trades_attack` (PGD on the KL from
``x + 0.001 N(0, I)``), shared with :class:`zerosum.modules.CAAT`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torch.nn import functional as F

from zerosum.attacks import refuse_degenerate_attack
from zerosum.attacks.trades import trades_attack
from zerosum.losses import trades_kl
from zerosum.modules.classifier import Classifier
from zerosum.modules.step_logging import log_step
from zerosum.nets import NetSpec, Normalized
from zerosum.optim import spec


class TRADES(Classifier):
    """TRADES adversarial training (Zhang et al. 2019, Eq. 5; module docstring).

    Args:
        num_classes: linked from the datamodule.
        in_channels: linked from the datamodule.
        net: the network (see :class:`~zerosum.modules.Classifier`).
        net_args: extra options of ``net``.
        optimizer: the network's optimizer.
        scheduler: optional learning-rate scheduler.
        scheduler_interval: "epoch" or "step".
        data_mean: linked from the datamodule (which must use ``normalize: false``).
        data_std: linked from the datamodule.
        beta: weight of the KL term (TRADES: 6).
        eps: radius of the inner maximisation (8/255).
        step_size: its step (2/255); positive unless ``eps`` is 0.
        steps: its steps (10); at least 1 unless ``eps`` is 0.
        init_std: its start ``x + init_std N(0, I)`` (0.001).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: NetSpec = "preact_resnet18",
        net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=1e-3),
        scheduler: Optional[LRSchedulerCallable] = None,
        scheduler_interval: str = "epoch",
        data_mean: Optional[Sequence[float]] = None,
        data_std: Optional[Sequence[float]] = None,
        beta: float = 6.0,
        eps: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        init_std: float = 0.001,
    ):
        super().__init__(num_classes, in_channels, net, net_args, optimizer, scheduler, scheduler_interval)
        if beta < 0:
            raise ValueError(f"beta: {beta} is negative; allowed: a weight >= 0 (TRADES: 6)")
        refuse_degenerate_attack(eps, steps, step_size)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.net = Normalized(self.net, data_mean, data_std)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        hp = self.hparams
        x_adv = trades_attack(self.net, x, eps=hp.eps, step_size=hp.step_size, steps=hp.steps, init_std=hp.init_std)
        logits = self(x)
        ce = F.cross_entropy(logits, y)
        kl = trades_kl(self(x_adv), logits, reduction="mean")
        loss = self.play("net", ce + hp.beta * kl)  # TRADES Eq. 5
        self.train_acc(logits.detach(), y)
        log_step(self, {"train/loss": loss, "train/ce": ce, "train/kl": kl}, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss
