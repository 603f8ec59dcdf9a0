"""TRADES (Zhang et al. 2019): the baseline whose regulariser CAAT's adversary uses.

``min_f E [ CE(f(x), y) + beta * max_{x' in B(x, eps)} KL(f(x) || f(x')) ]``  (TRADES Eq. 5).
The inner maximisation (:func:`trades_attack`) is PGD on the KL from ``x + 0.001 N(0, I)``, shared
with :class:`zerosum.modules.CAAT`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.nn import functional as F

from zerosum.attacks import pgd
from zerosum.losses import TradesKL, trades_kl
from zerosum.modules.classifier import Classifier
from zerosum.modules.step_logging import log_step
from zerosum.nets import Normalized


def clean_probabilities(net: nn.Module, x: Tensor) -> Tensor:
    """``softmax(net(x))`` in eval mode without gradients (the attack's fixed reference)."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return F.softmax(net(x), dim=1)
    finally:
        net.train(was_training)


def trades_attack(net: nn.Module, x: Tensor, *, eps: Union[float, Tensor], step_size: Union[float, Tensor],
                  steps: int, init_std: float = 0.001) -> Tensor:
    """``x' = argmax_{x' in B_inf(x, eps)} KL(f(x) || f(x'))`` by PGD from ``x + init_std N(0, I)``;
    ``eps`` / ``step_size`` may be per-sample (B,) tensors."""
    return pgd(net, x, clean_probabilities(net, x), eps=eps, step_size=step_size, steps=steps,
               loss_fn=TradesKL(clean_is_prob=True), random_start="normal", init_std=init_std)


class TRADES(Classifier):
    """Args (beyond :class:`~zerosum.modules.Classifier`'s):
        data_mean / data_std: linked from the datamodule (which must use ``normalize: false``).
        beta: weight of the KL term (TRADES: 6).
        eps / step_size / steps / init_std: the inner maximisation (8/255, 2/255, 10, 0.001).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: str = "preact_resnet18",
        net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = torch.optim.SGD,
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
        if beta < 0 or eps < 0 or step_size < 0 or steps < 0:
            raise ValueError("TRADES: beta, eps, step_size and steps must be >= 0")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.net = Normalized(self.net, data_mean, data_std)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        hp = self.hparams
        x_adv = trades_attack(self.net, x, eps=hp.eps, step_size=hp.step_size, steps=hp.steps, init_std=hp.init_std)
        logits = self(x)
        ce = F.cross_entropy(logits, y)
        kl = trades_kl(self(x_adv), logits, reduction="mean")
        loss = ce + hp.beta * kl
        self.train_acc(logits, y)
        log_step(self, {"train/loss": loss, "train/ce": ce, "train/kl": kl}, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss
