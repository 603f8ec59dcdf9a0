"""CAAT: Combining Adversaries with Anti-adversaries in Training (Zhou, Yang, Wu, AAAI 2023).

The reference for every protocol choice is the official code (xiaolingzhou98/CAAT, ``utils.py``:
``train_model``, ``caat_adv``, ``frl_train``; ``MLP.py``; ``CAAT.py``). Each training sample i gets an
adversarial perturbation (ascending the TRADES KL) and an anti-adversarial one (descending its
cross-entropy), both in the L-inf ball of radius ``eps * m_{y_i}``, and a pair of weights from a
meta-net fed with the sample's training dynamics zeta_i (Eq. 10, in the official normalised form):

    L(theta; phi) = sum_i a_i CE_i u_i / sum_i u_i + beta sum_i a_i KL_i v_i / sum_i v_i
                    + 1/B sum_i b_i CE(f(x_i^anti), y_i),          (a_i, b_i) = MetaNet_phi(zeta_i)

with per-class weights ``u = w_ce[y]``, ``v = w_kl[y]`` and radius multipliers ``m`` updated after
every validation from the class-wise clean and boundary errors (:mod:`zerosum.modules.caat_fairness`).

Every ``meta_interval`` batches the meta-net is trained Meta-Weight-Net style (Eq. 11-12): a virtual
SGD step ``theta'(phi)`` of the classifier on ``L(theta; phi)`` (the real optimizer's rule, momentum
and weight decay included, :func:`zerosum.meta.virtual_sgd_step`), then the meta objective on a clean
meta batch at ``theta'``, differentiated into ``phi``. ``meta_objective: official`` is the official
code's: the same three terms with ``a = b = 1`` on the meta batch (its own adversarial and
anti-adversarial examples made on ``f_{theta'}``); ``clean_ce`` is the clean cross-entropy of the
Meta-Weight-Net papers. Then the real step on ``L(theta; phi)`` with the meta-net's weights taken
under ``no_grad``. Each update is one :meth:`~zerosum.modules.game.Game.play`.

The official code always fine-tunes a warm-started network (``hot_start.pt``): ``warmup_epochs``
runs that standard pre-training (cross-entropy on the same training set) as the first epochs of the
same run; ``init_checkpoint`` loads one instead (two-step recipe).

Where this implementation departs from the official code, on purpose: the meta batch's per-class
weights and radii are indexed by the meta batch's labels (the official code reuses the training
batch's vectors); BatchNorm trains in train mode (the official attack leaves the network in eval mode
for the rest of the epoch). ``zeta``'s per-class features follow the official code by default
(``class_features``: a constant class loss, as the official variable is never updated, and the designed
class prior), which the meta-net's input BatchNorm turns into constants unless the data has a long tail.

Measured (``benchmarks/caat_table.py``, its "CAAT diagnosis"): at the official temperature 0.001 about
99% of the meta-net's outputs are saturated (a, b within 1e-3 of 0 or 1), so the meta-gradient reaches
only the ~1% of samples near its decision boundary and the split of the training samples between the
adversarial terms (a = 1) and the anti-adversarial term (b = 1) stays that of the meta-net's random
initialisation (97% of samples on the same side after 90 meta steps on digits), even where the meta
objective's gradient points the other way. With ``class_features: last_epoch`` two of zeta's six
features identify the class, so that random split often sends whole classes to the anti-adversarial
term only, where they get no adversarial training (digits pair-20%: the classes with a = 0 for all
their samples at initialisation were the classes with the worst robust error at the end).
``meta_temperature`` of order 1 lets the meta-net learn.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torch.nn import functional as F

from zerosum.attacks import pgd, refuse_degenerate_attack
from zerosum.attacks.trades import clean_probabilities, trades_attack
from zerosum.inference import eval_mode
from zerosum.losses import trades_kl
from zerosum.meta import AtParameters, copied_buffers, functional_forward, virtual_sgd_step
from zerosum.metrics import ClassRobustnessErrors
from zerosum.metrics.class_robustness import KINDS
from zerosum.modules.caat_fairness import class_weights as fairness_weights
from zerosum.modules.caat_fairness import eps_multipliers, update_lambdas
from zerosum.modules.caat_features import NUM_FEATURES, sample_features
from zerosum.modules.classifier import Classifier
from zerosum.modules.step_logging import log_step
from zerosum.nets import NetSpec, Normalized
from zerosum.nets.meta_net import MetaNet
from zerosum.optim import spec
from zerosum.parallel import all_reduce_mean

CLASS_WEIGHTINGS = ("none", "inverse_prior", "sqrt_inverse_prior")
META_OBJECTIVES = ("official", "clean_ce")
CLASS_FEATURES = ("official", "last_epoch")


class CAAT(Classifier):
    """CAAT: adversaries and anti-adversaries with meta-learned per-sample weights (module docstring).

    Args:
        num_classes: linked from the datamodule.
        in_channels: linked from the datamodule.
        net: the classifier (official: PreActResNet-18).
        net_args: extra options of ``net``.
        optimizer: the classifier's optimizer; must be ``torch.optim.SGD`` (the virtual step reproduces
            it). Official: lr 0.001, momentum 0.9, weight decay 5e-4.
        meta_optimizer: the meta-net's optimizer (official: Adam 1e-4, weight decay 5e-4).
        scheduler: the classifier's learning-rate scheduler (stepped per ``scheduler_interval``).
        scheduler_interval: "epoch" or "step".
        data_mean: linked from the datamodule (use ``normalize: false`` data; the network normalises).
        data_std: linked from the datamodule.
        beta: weight of the KL term (official: 1.5).
        adv_eps: base radius of the adversary (official: 10/255).
        adv_step_size: adversary step (official: 2/255); scales with the sample's radius.
        adv_steps: adversary steps (official: 10).
        anti_eps: base radius of the anti-adversary (official: 10/255, the adversary's).
        anti_step_size: anti-adversary step (official: 2/255); scales with the sample's radius.
        anti_steps: anti-adversary steps (official: 10).
        init_std: start of both attacks, ``x + init_std N(0, I)`` (official: 0.001).
        adv_eps_per_class: per-class base radii of the adversary replacing ``adv_eps`` (length C).
        anti_eps_per_class: per-class base radii of the anti-adversary replacing ``anti_eps``.
        per_sample_eps: also scale the radii by the clean confidence p_y (adversary) and 1 - p_y
            (anti-adversary); not in the official code.
        meta_interval: batches between meta steps (official: 50, the 50th, 100th, ... batch).
        meta_hidden: hidden units of the meta-net (official: 100).
        meta_temperature: softmax temperature of the meta-net (official: 0.001).
        meta_objective: "official" (CE + beta KL + anti-CE on the meta batch) or "clean_ce".
        class_features: zeta's two per-class features. "official": the class's loss is a constant (the
            official variable is never updated) and the class prior is the scenario's designed profile
            (uniform without long tail), so that the meta-net cannot split the training set by class;
            "last_epoch": the class's average loss of the previous epoch and its observed label share.
        class_weighting: extra per-class weight: "none", "inverse_prior" or "sqrt_inverse_prior"
            (normalised so the prior-weighted mean is 1).
        adaptive_bounds: update the per-class CE/KL weights and radius multipliers after every
            validation from class-wise clean and boundary errors (official: on).
        clean_bound: tolerated excess of a class's clean error over the total (official bound0: 0.07).
        boundary_bound: tolerated excess of a class's boundary error (official bound1: 0.07).
        weight_rate: update rate of the CE/KL weights (official rate1: 0.05, the KL's doubled).
        eps_rate: update rate of the radius multipliers (official rate2: 0.2).
        weight_limit: cap on the sum of each weight multiplier vector (official lim: 0.5).
        rate_halving_epochs: ``weight_rate`` halves every this many epochs (official: 40).
        eval_eps: radius of the validation/test PGD giving the class-wise errors (official: 8/255);
            0 skips robust evaluation (the bounds then follow clean errors only).
        eval_step_size: its step (official: 2/255).
        eval_steps: its steps (official: 20).
        warmup_epochs: epochs of standard cross-entropy training before CAAT starts (the official
            warm start); the validation after the last of them gives the first update of the bounds.
        warmup_lr: the classifier's learning rate during those epochs (CAAT's own, 0.001 officially,
            is a fine-tuning rate); None keeps the optimizer's.
        init_checkpoint: warm start from a checkpoint (Lightning or a plain state dict) of a
            Classifier, AdversarialTraining, TRADES or CAAT run whose network weights initialise this one.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: NetSpec = "preact_resnet18",
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
        meta_temperature: float = 0.001,
        meta_objective: str = "official",
        class_features: str = "official",
        class_weighting: str = "none",
        adaptive_bounds: bool = True,
        clean_bound: float = 0.07,
        boundary_bound: float = 0.07,
        weight_rate: float = 0.05,
        eps_rate: float = 0.2,
        weight_limit: float = 0.5,
        rate_halving_epochs: int = 40,
        eval_eps: float = 8 / 255,
        eval_step_size: float = 2 / 255,
        eval_steps: int = 20,
        warmup_epochs: int = 0,
        warmup_lr: Optional[float] = None,
        init_checkpoint: Optional[str] = None,
    ):
        super().__init__(num_classes, in_channels, net, net_args, optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["optimizer", "meta_optimizer", "scheduler"])
        if beta < 0:
            raise ValueError(f"beta: {beta} is negative; allowed: a weight >= 0 (official: 1.5)")
        refuse_degenerate_attack(adv_eps, adv_steps, adv_step_size, prefix="adv_")
        refuse_degenerate_attack(anti_eps, anti_steps, anti_step_size, prefix="anti_")
        refuse_degenerate_attack(eval_eps, eval_steps, eval_step_size, prefix="eval_")
        if init_std < 0:
            raise ValueError(f"init_std: {init_std} is negative; allowed: >= 0 (official: 0.001)")
        if meta_interval < 1:
            raise ValueError(f"meta_interval: {meta_interval}; allowed: an integer >= 1 (official: 50)")
        if class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting: {class_weighting!r}; allowed: {', '.join(CLASS_WEIGHTINGS)}")
        if class_features not in CLASS_FEATURES:
            raise ValueError(f"class_features: {class_features!r}; allowed: {', '.join(CLASS_FEATURES)}")
        if meta_objective not in META_OBJECTIVES:
            raise ValueError(f"meta_objective: {meta_objective!r}; allowed: {', '.join(META_OBJECTIVES)}")
        if warmup_lr is not None and warmup_lr <= 0:
            raise ValueError(f"warmup_lr: {warmup_lr}; allowed: a positive learning rate, or null")
        if min(weight_rate, eps_rate, weight_limit) < 0 or rate_halving_epochs < 1 or warmup_epochs < 0:
            raise ValueError("weight_rate / eps_rate / weight_limit / rate_halving_epochs / warmup_epochs: "
                             f"{weight_rate}, {eps_rate}, {weight_limit}, {rate_halving_epochs}, {warmup_epochs}; "
                             "allowed: rates and limit >= 0, rate_halving_epochs >= 1, warmup_epochs >= 0")
        for name, table in (("adv_eps_per_class", adv_eps_per_class), ("anti_eps_per_class", anti_eps_per_class)):
            if table is not None and (len(table) != num_classes or min(table) < 0):
                raise ValueError(f"{name}: {table}; allowed: {num_classes} non-negative radii")
        self.net = Normalized(self.net, data_mean, data_std)
        if init_checkpoint:
            load_net_weights(self.net.net, init_checkpoint)
        self.meta_net = MetaNet(NUM_FEATURES, meta_hidden, 2, meta_temperature)
        self.add_player("meta", "meta_net", meta_optimizer)
        base = lambda table, eps: torch.tensor(table if table is not None else [eps] * num_classes, dtype=torch.float32)
        self.register_buffer("adv_eps_table", base(adv_eps_per_class, adv_eps))
        self.register_buffer("anti_eps_table", base(anti_eps_per_class, anti_eps))
        # adaptive bounds: lambda for the CE weights, the KL weights and the radius multipliers
        self.register_buffer("fair_lambda", torch.zeros(3, num_classes))
        # zeta's per-class tables: previous epoch's average clean loss, class prior of the training labels
        self.register_buffer("class_loss", torch.full((num_classes,), math.log(num_classes)))
        self.register_buffer("class_prior", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("meta_batches", torch.zeros((), dtype=torch.long))
        self.val_class_errors = ClassRobustnessErrors(num_classes)
        self.test_class_errors = ClassRobustnessErrors(num_classes)
        self._loss_sum = torch.zeros(num_classes, dtype=torch.float64)
        self._label_count = torch.zeros(num_classes, dtype=torch.float64)
        self._prior_known = False

    # ---- per-class tables ------------------------------------------------------------------------
    @property
    def ce_weights(self) -> Tensor:
        """Per-class weights of the CE term (1/C each before any update)."""
        return fairness_weights(self.fair_lambda[0])

    @property
    def kl_weights(self) -> Tensor:
        """Per-class weights of the KL term."""
        return fairness_weights(self.fair_lambda[1])

    @property
    def eps_multipliers(self) -> Tensor:
        """Per-class multipliers of both radii (1 before any update)."""
        return eps_multipliers(self.fair_lambda[2])

    def class_weights(self) -> Tensor:
        mode = self.hparams.class_weighting
        if mode == "none":
            return torch.ones_like(self.class_prior)
        w = 1.0 / self.class_prior.clamp_min(1e-8)
        w = w.sqrt() if mode == "sqrt_inverse_prior" else w
        return w / (self.class_prior * w).sum()

    # ---- pieces of Eq. 10 ----------------------------------------------------------------------
    def base_bounds(self, y: Tensor, p_true: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample radii (adversarial, anti-adversarial) before the adaptive multipliers, (B,)."""
        adv, anti = self.adv_eps_table[y], self.anti_eps_table[y]
        if self.hparams.per_sample_eps:
            adv, anti = adv * p_true, anti * (1 - p_true)
        return adv, anti

    def bounds(self, y: Tensor, p_true: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample radii (adversarial, anti-adversarial), shape (B,): the base radii times the
        class's adaptive multiplier (official ``new_eps = epsilon * weight2``)."""
        adv, anti = self.base_bounds(y, p_true)
        scale = self.eps_multipliers[y]
        return adv * scale, anti * scale

    def perturb(self, x: Tensor, y: Tensor, p_clean: Tensor, net=None) -> tuple[Tensor, Tensor]:
        """Adversarial (ascending the TRADES KL) and anti-adversarial (descending CE) examples of
        ``net`` (default: the classifier) within the per-sample radii (official ``caat_adv``). The
        step follows the base radius (per-class table, confidence), not the adaptive multiplier: the
        official step is 2/255 whatever the multiplier."""
        hp, net = self.hparams, net if net is not None else self.net
        p_true = p_clean.gather(1, y[:, None]).squeeze(1)
        adv_base, anti_base = self.base_bounds(y, p_true)
        adv_eps, anti_eps = self.bounds(y, p_true)
        x_adv = trades_attack(net, x, eps=adv_eps, step_size=hp.adv_step_size * adv_base / max(hp.adv_eps, 1e-12),
                              steps=hp.adv_steps, init_std=hp.init_std)
        x_anti = pgd(net, x, y, eps=anti_eps, step_size=hp.anti_step_size * anti_base / max(hp.anti_eps, 1e-12),
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

    def objective(self, losses: dict[str, Tensor], y: Tensor, weights: Optional[Tensor] = None) -> Tensor:
        """Eq. 10 in the official normalised form with ``weights[:, 0] = a``, ``weights[:, 1] = b``
        (``None``: a = b = 1, the official meta objective)."""
        a, b = (weights[:, 0], weights[:, 1]) if weights is not None else (1.0, 1.0)
        prior = self.class_weights()[y]
        u, v = self.ce_weights[y] * prior, self.kl_weights[y] * prior
        return ((a * losses["ce"] * u).sum() / u.sum()
                + self.hparams.beta * (a * losses["kl"] * v).sum() / v.sum()
                + (b * losses["anti"] * prior).sum() / prior.sum())

    def features_of(self, logits: Tensor, y: Tensor) -> Tensor:
        """zeta_i (:func:`zerosum.modules.caat_features.sample_features`)."""
        return sample_features(logits, y, self.class_loss, self.class_prior)

    # ---- the two updates -----------------------------------------------------------------------
    def meta_objective(self, x, x_adv, x_anti, y, zeta, x_meta, y_meta) -> Tensor:
        """Eq. 11-12: the meta objective on the meta batch after a virtual SGD step of the classifier
        on ``L(theta; phi)`` (Eq. 10), differentiable in the meta-net's parameters phi."""
        opt = self.optimizer_of("net")
        params = dict(self.net.named_parameters())
        forward = lambda inp: functional_forward(self.net, params, copied_buffers(self.net), inp)
        loss = self.objective(self.sample_losses(forward, x, x_adv, x_anti, y), y, self.meta_net(zeta))
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
        virtual = virtual_sgd_step(params, grads, opt)
        at_virtual = lambda inp: functional_forward(self.net, virtual, copied_buffers(self.net), inp)
        if self.hparams.meta_objective == "clean_ce":
            return F.cross_entropy(at_virtual(x_meta), y_meta)
        meta_adv, meta_anti = self.meta_examples(virtual, x_meta, y_meta)
        return self.objective(self.sample_losses(at_virtual, x_meta, meta_adv, meta_anti, y_meta), y_meta)

    def meta_examples(self, virtual: dict[str, Tensor], x_meta: Tensor, y_meta: Tensor) -> tuple[Tensor, Tensor]:
        """The meta batch's adversarial and anti-adversarial examples, made on ``f_{theta'}`` (values
        only: no gradient flows through the attacks, as in the official code)."""
        frozen = AtParameters(self.net, {k: v.detach() for k, v in virtual.items()}, copied_buffers(self.net))
        return self.perturb(x_meta, y_meta, clean_probabilities(frozen, x_meta), net=frozen)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        if not isinstance(batch, dict) or "train" not in batch or "meta" not in batch:
            raise ValueError("CAAT needs training batches {'train': (x, y, idx), 'meta': (x, y, idx)}: use "
                             "zerosum.datamodules.ScenarioDataModule with meta_per_class > 0 and combine_meta: true")
        x, y = batch["train"][0], batch["train"][1]
        if self.current_epoch < self.hparams.warmup_epochs:
            return self._warmup_step(x, y)
        x_meta, y_meta = batch["meta"][0], batch["meta"][1]

        clean_logits = self._eval_logits(x)
        x_adv, x_anti = self.perturb(x, y, F.softmax(clean_logits, dim=1))
        zeta = self.features_of(clean_logits, y)

        if (int(self.meta_batches) + 1) % self.hparams.meta_interval == 0:  # Eq. 11-12
            meta_loss = self.play("meta", self.meta_objective(x, x_adv, x_anti, y, zeta, x_meta, y_meta))
            log_step(self, {"train/meta_loss": meta_loss}, prog_bar=True)
        self.meta_batches += 1

        with torch.no_grad():
            weights = self.meta_net(zeta)
        losses = self.sample_losses(self.net, x, x_adv, x_anti, y)
        loss = self.play("net", self.objective(losses, y, weights))  # Eq. 10

        self._accumulate(losses["ce"].detach(), y)
        self.train_acc(losses["logits"].detach(), y)
        log_step(self, {"train/loss": loss, "train/ce": losses["ce"].mean(), "train/kl": losses["kl"].mean(),
                        "train/anti_ce": losses["anti"].mean(), "train/weight_adv": weights[:, 0].mean(),
                        "train/weight_anti": weights[:, 1].mean()})
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss.detach()

    def _warmup_step(self, x: Tensor, y: Tensor) -> Tensor:
        """The official warm start: standard cross-entropy training of the classifier."""
        logits = self(x)
        loss = self.play("net", F.cross_entropy(logits, y))
        self._accumulate(F.cross_entropy(logits.detach(), y, reduction="none"), y)
        self.train_acc(logits.detach(), y)
        log_step(self, {"train/warmup_ce": loss}, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _eval_logits(self, x: Tensor) -> Tensor:
        with eval_mode(self.net), torch.no_grad():
            return self.net(x)

    # ---- evaluation: class-wise errors and the adaptive bounds ------------------------------------
    def _evaluate(self, batch, metric, stage: str) -> None:
        super()._evaluate(batch, metric, stage)  # clean loss and accuracy
        hp = self.hparams
        if hp.eval_eps <= 0:
            return
        x, y = batch[0], batch[1]
        x_pgd = pgd(self.net, x, y, eps=hp.eval_eps, step_size=hp.eval_step_size, steps=hp.eval_steps,
                    random_start="uniform")  # official evaluation attack: PGD-20, uniform start
        with torch.no_grad():
            clean_pred, adv_pred = self(x).argmax(1), self(x_pgd).argmax(1)
        (self.val_class_errors if stage == "val" else self.test_class_errors).update(clean_pred, adv_pred, y)

    def _log_class_errors(self, stage: str) -> Optional[dict[str, Tensor]]:
        metric = self.val_class_errors if stage == "val" else self.test_class_errors
        if self.hparams.eval_eps <= 0 or not metric.update_called:
            return None
        values = metric.compute()  # synchronised over ranks
        totals = {k: getattr(metric, k).sum().float() / metric.count.sum().clamp_min(1) for k in KINDS}
        metric.reset()
        self.log(f"{stage}/robust_acc", 1 - totals["robust"])
        for kind in KINDS:  # a namespace of their own: ClassRobustness logs {stage}/{kind}_err_{agg}
            for agg in ("avg", "worst"):
                self.log(f"{stage}/caat_class_errors/{kind}_{agg}", values[f"{kind}_{agg}"])
        return {**values, "natural_total": totals["natural"], "boundary_total": totals["boundary"]}

    def on_validation_epoch_end(self) -> None:
        values = self._log_class_errors("val")
        if values is None or self.trainer.sanity_checking or not self.hparams.adaptive_bounds:
            return
        if self.current_epoch + 1 < self.hparams.warmup_epochs:
            return  # the bounds start with the model CAAT starts from
        self.update_bounds(values["natural"], values["boundary"], float(values["natural_total"]),
                           float(values["boundary_total"]))

    def on_test_epoch_end(self) -> None:
        self._log_class_errors("test")

    def update_bounds(self, clean_err: Tensor, boundary_err: Tensor, clean_total: float,
                      boundary_total: float) -> None:
        """One official update of the per-class CE/KL weights and radius multipliers from validation
        class-wise errors; ``weight_rate`` halves every ``rate_halving_epochs`` CAAT epochs."""
        hp = self.hparams
        caat_epoch = max(0, self.current_epoch + 1 - hp.warmup_epochs) + 1  # the CAAT epoch about to start (1-based)
        rate = hp.weight_rate * 0.5 ** (caat_epoch // hp.rate_halving_epochs)
        lmbda = update_lambdas(self.fair_lambda, clean_err.to(self.fair_lambda), boundary_err.to(self.fair_lambda),
                               clean_total, boundary_total, clean_bound=hp.clean_bound,
                               boundary_bound=hp.boundary_bound, rate=rate, eps_rate=hp.eps_rate,
                               limit=hp.weight_limit)
        self.fair_lambda.copy_(lmbda)
        if self._trainer is not None:
            self.log_dict({"fair/eps_multiplier_max": self.eps_multipliers.max(),
                           "fair/ce_weight_max": self.ce_weights.max(), "fair/kl_weight_max": self.kl_weights.max()})

    # ---- per-class tables of zeta and synchronisation -----------------------------------------
    def _accumulate(self, ce: Tensor, y: Tensor) -> None:
        c = self.hparams.num_classes
        self._loss_sum += torch.bincount(y.cpu(), weights=ce.cpu().double(), minlength=c)
        self._label_count += torch.bincount(y.cpu(), minlength=c).double()

    def on_fit_start(self) -> None:
        source = "design_class_counts" if self.hparams.class_features == "official" else "class_counts"
        counts = getattr(self.trainer.datamodule, source, None) if self.trainer.datamodule else None
        if counts is not None:
            counts = torch.as_tensor(counts, dtype=torch.float32, device=self.device)
            self.class_prior.copy_(counts / counts.sum())
            self._prior_known = True

    def on_train_epoch_start(self) -> None:
        self._loss_sum.zero_()
        self._label_count.zero_()
        warmup_lr = self.hparams.warmup_lr
        if warmup_lr is not None and self.current_epoch <= self.hparams.warmup_epochs:
            opt = self.optimizer_of("net")
            for group in opt.param_groups:
                if self.current_epoch < self.hparams.warmup_epochs:
                    group.setdefault("caat_lr", group["lr"])  # CAAT's own rate, restored after the warm-up
                    group["lr"] = warmup_lr
                elif "caat_lr" in group:
                    group["lr"] = group.pop("caat_lr")

    def on_train_epoch_end(self) -> None:
        sums = torch.stack([self._loss_sum, self._label_count]).to(self.device)
        all_reduce_mean([sums])  # mean over ranks; the ratio below is what the sum would give
        loss_sum, count = sums[0], sums[1]
        seen = count > 0
        if self.hparams.class_features == "last_epoch":  # official: the per-class loss is never updated
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
    raise ValueError(f"init_checkpoint: {path!r} holds no network weights matching {type(net).__name__} "
                     f"({'; '.join(errors) or 'no keys with prefix net.'}); allowed: a checkpoint of a module with "
                     "the same net")
