"""Adversarial training (Madry et al., 2018), the robust models of Ilyas et al. (2019).

Ilyas et al.'s Eq. (4): ``min_θ E_(x,y)~D [ max_{δ ∈ Δ(x)} L_θ(x + δ, y) ]``. The inner maximisation
is PGD (:func:`zerosum.attacks.pgd`) in [0, 1] pixel space; the network normalises inside itself
(:class:`zerosum.nets.Normalized`, statistics linked from the datamodule, which must use
``normalize: false``), so ``eps`` is in pixel units.

``eps: 0`` trains a standard model with exactly the same network and normalisation, which is how the
standard source models of the dataset construction (D_NR, D_rand, D_det) are trained.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from zerosum.attacks import PGD, refuse_degenerate_attack
from zerosum.modules.classifier import Classifier
from zerosum.modules.step_logging import log_step
from zerosum.nets import NetSpec, Normalized
from zerosum.optim import spec


class AdversarialTraining(Classifier):
    """Cross-entropy on PGD examples; logs clean and robust (PGD) accuracy.

    Robust accuracy of the module's own evaluation attack is computed here (it belongs to the
    module: reloaded with it, printed by ``zerosum test``); :class:`zerosum.callbacks.RobustAccuracy`
    adds other threat models to any classifier. Both call the same :class:`zerosum.attacks.PGD`.

    Args:
        num_classes: linked from the datamodule by the CLI.
        in_channels: linked from the datamodule by the CLI.
        net: the network (see :class:`zerosum.modules.Classifier`).
        net_args: extra options of ``net``.
        optimizer: the network's optimizer.
        scheduler: optional learning-rate scheduler.
        scheduler_interval: "epoch" or "step".
        label_smoothing: of the cross-entropy.
        data_mean: linked from the datamodule (which must use ``normalize: false``).
        data_std: linked from the datamodule.
        norm: threat model, "l2" or "linf".
        eps: training radius (pixel units; Ilyas et al.: L2 0.25 / 0.5, L-inf 8/255); 0 = standard training.
        steps: PGD steps for training (7); at least 1 unless ``eps`` is 0.
        step_size: PGD step; default ``2.5 * eps / steps``; positive unless ``eps`` is 0.
        random_start: random start of the training attack (uniform box / sphere).
        eval_eps: radius of the attack of ``val/robust_acc`` and ``test/robust_acc`` (default: the
            training radius; 0 skips robust evaluation).
        eval_steps: its steps (default: the training steps).
        eval_step_size: its step (default: the training step when the attacks match, else 2.5 * eps / steps).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: NetSpec = "resnet18_cifar",
        net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-3),
        scheduler: Optional[LRSchedulerCallable] = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
        data_mean: Optional[Sequence[float]] = None,
        data_std: Optional[Sequence[float]] = None,
        norm: str = "l2",
        eps: float = 0.5,
        steps: int = 7,
        step_size: Optional[float] = None,
        random_start: Union[bool, str] = True,
        eval_eps: Optional[float] = None,
        eval_steps: Optional[int] = None,
        eval_step_size: Optional[float] = None,
    ):
        super().__init__(num_classes, in_channels, net, net_args, optimizer, scheduler, scheduler_interval,
                         label_smoothing)
        self.net = Normalized(self.net, data_mean, data_std)
        refuse_degenerate_attack(eps, steps, step_size)
        self.attack = PGD(norm, eps, steps, step_size, random_start)
        eval_eps = eps if eval_eps is None else eval_eps
        eval_steps = steps if eval_steps is None else eval_steps
        refuse_degenerate_attack(eval_eps, eval_steps, eval_step_size, prefix="eval_")
        if eval_step_size is None:
            eval_step_size = step_size if (eval_eps == eps and eval_steps == steps) else None
        self.eval_attack = PGD(norm, eval_eps, eval_steps, eval_step_size, random_start)
        self.val_robust_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_robust_acc = MulticlassAccuracy(num_classes, average="micro")

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """One step of Eq. (4): PGD inner maximisation (model in eval mode), then descent on x + δ."""
        x, y = batch[0], batch[1]
        x_adv = self.attack(self.net, x, y)
        logits = self(x_adv)
        loss = self.play("net", F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing))
        self.train_acc(logits.detach(), y)
        log_step(self, {"train/loss": loss}, prog_bar=True)
        # accuracy on the training attack's examples (clean accuracy when eps = 0)
        self.log("train/acc" if not self.attack.active else "train/robust_acc", self.train_acc,
                 on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, metric: MulticlassAccuracy, stage: str) -> None:
        super()._evaluate(batch, metric, stage)  # clean loss and accuracy
        if self.eval_attack.active:
            x, y = batch[0], batch[1]
            x_adv = self.eval_attack(self.net, x, y)  # leaves inference mode by itself
            robust = self.val_robust_acc if stage == "val" else self.test_robust_acc
            robust(self(x_adv), y)
            self.log(f"{stage}/robust_acc", robust, prog_bar=True)
