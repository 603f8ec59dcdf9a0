"""CAAT: Combining Adversaries with Anti-adversaries in Training (Zhou, Yang, Wu, AAAI 2023).

Each training sample i gets an adversarial perturbation (ascending the TRADES KL) and an
anti-adversarial one (descending its cross-entropy), each in its own L-inf ball, and a pair of
weights from a meta-net fed with the sample's training dynamics zeta_i:

    L(theta; phi) = 1/B sum_i w_{y_i} [ a_i (CE(f(x_i), y_i) + beta KL(f(x_i) || f(x_i^adv)))
                                        + b_i CE(f(x_i^anti), y_i) ],    (a_i, b_i) = MetaNet_phi(zeta_i)
                                                                                         (Eq. 10)
Every ``meta_interval`` batches the meta-net is trained Meta-Weight-Net style (Eq. 11-12): a virtual
SGD step ``theta'(phi)`` of the classifier on ``L(theta; phi)`` (the real optimizer's rule, momentum
and weight decay included, :func:`zerosum.meta.virtual_sgd_step`), then the cross-entropy of
``f_{theta'}`` on a clean balanced meta batch, differentiated into ``phi``. Then the real step on
``L(theta; phi)`` with the meta-net's weights taken under ``no_grad``.

Per-sample bounds (Sec. 4-5): each direction has a base radius, optionally replaced per class
(``adv_eps_per_class`` / ``anti_eps_per_class``), and optionally scaled per sample by the clean
confidence p_{i,y_i} (``per_sample_eps``): confident samples get their full adversarial radius,
uncertain (hard or mislabelled) ones a larger anti-adversarial radius. PGD step sizes scale with
the radius. Training batches are ``{"train": ..., "meta": ...}`` from
:class:`zerosum.datamodules.ScenarioDataModule`.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torch.nn import functional as F

from zerosum.attacks import pgd
from zerosum.attacks.trades import trades_attack
from zerosum.inference import eval_mode
from zerosum.losses import trades_kl
from zerosum.meta import copied_buffers, functional_forward, virtual_sgd_step
from zerosum.modules.caat_features import NUM_FEATURES, sample_features
from zerosum.modules.classifier import Classifier
from zerosum.modules.step_logging import log_step
from zerosum.nets import Normalized
from zerosum.nets.meta_net import MetaNet
from zerosum.optim import spec
from zerosum.parallel import all_reduce_mean

CLASS_WEIGHTINGS = ("none", "inverse_prior", "sqrt_inverse_prior")


class CAAT(Classifier):
    """Args:
        num_classes / in_channels / data_mean / data_std: linked from the datamodule (use
            ``normalize: false`` data; the network normalises inside, so eps is in pixels).
        net / net_args: the classifier (paper: ``preact_resnet18``).
        optimizer: the classifier's optimizer; must be ``torch.optim.SGD`` (the virtual step
            reproduces it). scheduler / scheduler_interval: stepped manually.
        meta_optimizer: the meta-net's optimizer (Adam 1e-4, wd 5e-4).
        beta: weight of the KL term (1.5).
        adv_eps / adv_step_size / adv_steps: adversary (10/255, 2/255, 10).
        anti_eps / anti_step_size / anti_steps: anti-adversary (10/255, 2/255, 10).
        init_std: start of both attacks, ``x + init_std N(0, I)``.
        adv_eps_per_class / anti_eps_per_class: per-class radii replacing the base ones (length C).
        per_sample_eps: scale the radii per sample by the clean confidence (see module doc).
        meta_interval: batches between meta steps (50); 1 = every batch.
        meta_hidden / meta_temperature: meta-net width (100) and softmax temperature.
        class_weighting: extra per-class weight w_y: "none", "inverse_prior" or "sqrt_inverse_prior"
            (normalised so the prior-weighted mean is 1).
        init_checkpoint: warm start: a checkpoint (Lightning or a plain state dict) of a Classifier,
            AdversarialTraining, TRADES or CAAT run whose network weights initialise this classifier.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: str = "preact_resnet18",
        net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=1e-3, momentum=0.9, weight_decay=5e-4),
        meta_optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-4, weight_decay=5e-4),
        scheduler: Optional[LRSchedulerCallable] = None,
        scheduler_interval: str = "epoch",
        data_mean: Optional[Sequence[float]] = None,
        data_std: Optional[Sequence[float]] = None,
        beta: float = 1.5,
        adv_eps: float = 10 / 255,
        adv_step_size: float = 2 / 255,
        adv_steps: int = 10,
        anti_eps: float = 10 / 255,
        anti_step_size: float = 2 / 255,
        anti_steps: int = 10,
        init_std: float = 0.001,
        adv_eps_per_class: Optional[list[float]] = None,
        anti_eps_per_class: Optional[list[float]] = None,
        per_sample_eps: bool = False,
        meta_interval: int = 50,
        meta_hidden: int = 100,
        meta_temperature: float = 0.1,
        class_weighting: str = "none",
        init_checkpoint: Optional[str] = None,
    ):
        super().__init__(num_classes, in_channels, net, net_args, optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["optimizer", "meta_optimizer", "scheduler"])
        if min(beta, adv_eps, adv_step_size, anti_eps, anti_step_size, init_std) < 0 or min(adv_steps, anti_steps) < 0:
            raise ValueError("CAAT: beta, the radii, step sizes, step counts and init_std must be >= 0")
        if meta_interval < 1:
            raise ValueError(f"CAAT: meta_interval must be >= 1, got {meta_interval}")
        if class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"CAAT: class_weighting must be one of {CLASS_WEIGHTINGS}; got {class_weighting!r}")
        for name, table in (("adv_eps_per_class", adv_eps_per_class), ("anti_eps_per_class", anti_eps_per_class)):
            if table is not None and (len(table) != num_classes or min(table) < 0):
                raise ValueError(f"CAAT: {name} must list {num_classes} non-negative radii, got {table}")
        self.net = Normalized(self.net, data_mean, data_std)
        if init_checkpoint:
            load_net_weights(self.net.net, init_checkpoint)
        self.meta_net = MetaNet(NUM_FEATURES, meta_hidden, 2, meta_temperature)
        self.add_player("meta", "meta_net", meta_optimizer)
        base = lambda table, eps: torch.tensor(table if table is not None else [eps] * num_classes, dtype=torch.float32)
        self.register_buffer("adv_eps_table", base(adv_eps_per_class, adv_eps))
        self.register_buffer("anti_eps_table", base(anti_eps_per_class, anti_eps))
        # zeta's per-class tables: previous epoch's average clean loss, class prior of the training labels
        self.register_buffer("class_loss", torch.full((num_classes,), math.log(num_classes)))
        self.register_buffer("class_prior", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("meta_batches", torch.zeros((), dtype=torch.long))
        self._loss_sum = torch.zeros(num_classes, dtype=torch.float64)
        self._label_count = torch.zeros(num_classes, dtype=torch.float64)
        self._prior_known = False

    # ---- pieces of Eq. 10 ----------------------------------------------------------------------
    def bounds(self, y: Tensor, p_true: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample radii (adversarial, anti-adversarial), shape (B,)."""
        adv, anti = self.adv_eps_table[y], self.anti_eps_table[y]
        if self.hparams.per_sample_eps:
            adv, anti = adv * p_true, anti * (1 - p_true)
        return adv, anti

    def perturb(self, x: Tensor, y: Tensor, p_clean: Tensor) -> tuple[Tensor, Tensor]:
        """Adversarial (ascending the TRADES KL) and anti-adversarial (descending CE) examples."""
        hp = self.hparams
        p_true = p_clean.gather(1, y[:, None]).squeeze(1)
        adv_eps, anti_eps = self.bounds(y, p_true)
        x_adv = trades_attack(self.net, x, eps=adv_eps, step_size=hp.adv_step_size * adv_eps / max(hp.adv_eps, 1e-12),
                              steps=hp.adv_steps, init_std=hp.init_std)
        x_anti = pgd(self.net, x, y, eps=anti_eps, step_size=hp.anti_step_size * anti_eps / max(hp.anti_eps, 1e-12),
                     steps=hp.anti_steps, targeted=True, random_start="normal", init_std=hp.init_std)
        return x_adv, x_anti

    def sample_losses(self, forward, x: Tensor, x_adv: Tensor, x_anti: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Per-sample CE(x), KL(f(x) || f(x^adv)), CE(x^anti) with ``forward`` (the model, or the model
        at virtual parameters)."""
        logits = forward(x)
        return {"ce": F.cross_entropy(logits, y, reduction="none"),
                "kl": trades_kl(forward(x_adv), logits),
                "anti": F.cross_entropy(forward(x_anti), y, reduction="none"),
                "logits": logits}

    def class_weights(self) -> Tensor:
        mode = self.hparams.class_weighting
        if mode == "none":
            return torch.ones_like(self.class_prior)
        w = 1.0 / self.class_prior.clamp_min(1e-8)
        w = w.sqrt() if mode == "sqrt_inverse_prior" else w
        return w / (self.class_prior * w).sum()

    def objective(self, losses: dict[str, Tensor], weights: Tensor, y: Tensor) -> Tensor:
        """Eq. 10 with ``weights[:, 0] = a`` and ``weights[:, 1] = b``."""
        a, b = weights[:, 0], weights[:, 1]
        per_sample = a * (losses["ce"] + self.hparams.beta * losses["kl"]) + b * losses["anti"]
        return (self.class_weights()[y] * per_sample).mean()

    def features_of(self, logits: Tensor, y: Tensor) -> Tensor:
        """zeta_i (:func:`zerosum.modules.caat_features.sample_features`)."""
        return sample_features(logits, y, self.class_loss, self.class_prior)

    # ---- the two updates -----------------------------------------------------------------------
    def meta_objective(self, x, x_adv, x_anti, y, zeta, x_meta, y_meta) -> Tensor:
        """Eq. 11-12: the clean cross-entropy on the meta batch after a virtual SGD step of the
        classifier on ``L(theta; phi)`` (Eq. 10), differentiable in the meta-net's parameters phi."""
        opt = self.optimizer_of("net")
        params = dict(self.net.named_parameters())
        forward = lambda inp: functional_forward(self.net, params, copied_buffers(self.net), inp)
        weights = self.meta_net(zeta)
        loss = self.objective(self.sample_losses(forward, x, x_adv, x_anti, y), weights, y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
        virtual = virtual_sgd_step(params, grads, opt)
        meta_logits = functional_forward(self.net, virtual, copied_buffers(self.net), x_meta)
        return F.cross_entropy(meta_logits, y_meta)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        if not isinstance(batch, dict) or "train" not in batch or "meta" not in batch:
            raise ValueError("CAAT needs training batches {'train': (x, y, idx), 'meta': (x, y, idx)}: use "
                             "zerosum.datamodules.ScenarioDataModule with meta_per_class > 0 and combine_meta: true")
        x, y = batch["train"][0], batch["train"][1]
        x_meta, y_meta = batch["meta"][0], batch["meta"][1]

        clean_logits = self._eval_logits(x)
        x_adv, x_anti = self.perturb(x, y, F.softmax(clean_logits, dim=1))
        zeta = self.features_of(clean_logits, y)

        if int(self.meta_batches) % self.hparams.meta_interval == 0:  # Eq. 11-12
            meta_loss = self.play("meta", self.meta_objective(x, x_adv, x_anti, y, zeta, x_meta, y_meta))
            log_step(self, {"train/meta_loss": meta_loss}, prog_bar=True)
        self.meta_batches += 1

        with torch.no_grad():
            weights = self.meta_net(zeta)
        losses = self.sample_losses(self.net, x, x_adv, x_anti, y)
        loss = self.play("net", self.objective(losses, weights, y))  # Eq. 10

        self._accumulate(losses["ce"].detach(), y)
        self.train_acc(losses["logits"].detach(), y)
        log_step(self, {"train/loss": loss, "train/ce": losses["ce"].mean(), "train/kl": losses["kl"].mean(),
                        "train/anti_ce": losses["anti"].mean(), "train/weight_adv": weights[:, 0].mean(),
                        "train/weight_anti": weights[:, 1].mean()})
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss.detach()

    def _eval_logits(self, x: Tensor) -> Tensor:
        with eval_mode(self.net), torch.no_grad():
            return self.net(x)

    # ---- per-class tables of zeta and synchronisation -----------------------------------------
    def _accumulate(self, ce: Tensor, y: Tensor) -> None:
        c = self.hparams.num_classes
        self._loss_sum += torch.bincount(y.cpu(), weights=ce.cpu().double(), minlength=c)
        self._label_count += torch.bincount(y.cpu(), minlength=c).double()

    def on_fit_start(self) -> None:
        counts = getattr(self.trainer.datamodule, "class_counts", None) if self.trainer.datamodule else None
        if counts is not None:
            counts = torch.as_tensor(counts, dtype=torch.float32, device=self.device)
            self.class_prior.copy_(counts / counts.sum())
            self._prior_known = True

    def on_train_epoch_start(self) -> None:
        self._loss_sum.zero_()
        self._label_count.zero_()

    def on_train_epoch_end(self) -> None:
        sums = torch.stack([self._loss_sum, self._label_count]).to(self.device)
        all_reduce_mean([sums])  # mean over ranks; the ratio below is what the sum would give
        loss_sum, count = sums[0], sums[1]
        seen = count > 0
        self.class_loss[seen] = (loss_sum[seen] / count[seen]).to(self.class_loss.dtype)
        if not self._prior_known and count.sum() > 0:
            self.class_prior.copy_((count / count.sum()).to(self.class_prior.dtype))
        super().on_train_epoch_end()

    @torch.no_grad()
    def sample_weights(self, x: Tensor, y: Tensor) -> Tensor:
        """The meta-net's (a, b) for a batch, in eval mode (analysis; e.g. weights of noisy samples)."""
        with eval_mode(self.meta_net):
            return self.meta_net(self.features_of(self._eval_logits(x), y))


def load_net_weights(net: torch.nn.Module, path: str) -> None:
    """Loads a network's weights from a Lightning checkpoint or a state dict, whichever prefix
    (``net.net.``, ``net.``, none) the saving module used."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    errors = []
    for prefix in ("net.net.", "net.", ""):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not sub:
            continue
        try:
            net.load_state_dict(sub, strict=True)
            return
        except RuntimeError as err:
            errors.append(f"prefix {prefix!r}: {str(err).splitlines()[0]}")
    raise ValueError(f"init_checkpoint={path!r}: no network weights matching {type(net).__name__} "
                     f"({'; '.join(errors) or 'no keys with prefix net.'})")
