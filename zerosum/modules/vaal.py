"""VAAL: variational adversarial active learning (Sinha, Ebrahimi, Darrell, ICCV 2019) as a
LightningModule: a task model T, a beta-VAE and a latent discriminator D trained together on a
labeled and an unlabeled stream. The query that uses D lives in :class:`zerosum.query.VAALQuery`.

One training step (Algorithm 1; the order below is the official code's, T first):

1. T: ``L_T = CE(T(x_L), y_L)``, a step of ``task_optimizer`` (alpha3 in the paper's table).
2. ``num_vae_steps`` (default 2) VAE steps on Eq. 4,
   ``L_VAE = lambda1 * L_trd (Eq. 1, on x_L and on x_U) + lambda2 * L_adv (Eq. 2)``,
   with ``vae_optimizer`` (alpha1); D is frozen.
3. ``num_adv_steps`` (default 1) D steps on Eq. 3, ``BCE(D(mu_L), 1) + BCE(D(mu_U), 0)``,
   with ``disc_optimizer`` (alpha2); the VAE is frozen (its means are computed without gradient).

Each player's update is one :meth:`~zerosum.modules.Game.play`, so the step reads like Algorithm 1.

**The official recipe** (sinhasam/vaal, ``solver.py`` / ``main.py`` / ``arguments.py``) is this module's
default where the module decides it, and the paper configs (``configs/vaal/*.yaml``) set the rest:

- *Fresh batches* (``fresh_batches=True``): ``solver.py`` draws a new labeled and unlabeled batch
  before every VAE step but the first and every D step but the first (T and the first VAE step share
  one draw, the first D step reuses the last VAE draw). The loader's batch is therefore cut into
  :attr:`draws_per_step` ``= num_vae_steps + num_adv_steps - 1`` equal draws, used in that order: set
  the datamodule's ``batch_size`` to ``draws_per_step x`` the per-draw batch (2 x 64 for the paper's
  64 with the default 2 VAE + 1 D steps). With a shuffled, cycling labeled stream this is exactly the
  official sequence of draws. ``fresh_batches=False`` reuses the one batch for every update.
- *KL summed* over latent dimensions and the batch (``kl_reduction="sum"``, ``solver.py: vae_loss``);
  ``"mean"`` keeps the per-element average (see :mod:`zerosum.losses.vae_loss`).
- *Task model*: SGD lr 0.01, momentum 0.9, weight decay 5e-4 (``solver.py: optim_task_model``), the
  rate divided by 10 every quarter of a round (``lr_change = train_iterations // 4``): give
  ``task_scheduler: torch.optim.lr_scheduler.StepLR`` with ``step_size = steps_per_round // 4`` (it steps
  once per task update and is rebuilt each round). VAE and D: Adam 5e-4 (``solver.py``).
- *Round length and weights* are the protocol's (:class:`zerosum.callbacks.ActiveLearning`): a fixed
  number of iterations per round, ``num_images * train_epochs // batch_size`` (``solver.py: train``),
  cycling the labeled set, and the task weights best on the validation split (checked every 1000
  iterations in ``solver.py``).

The labeled and unlabeled batches go through the VAE in **one** forward pass (concatenated): in
training mode BatchNorm normalises with batch statistics, and two separate passes (as in the official
code) would normalise each pool by its own statistics, erasing exactly the first-moment shift between
the pools that D is meant to detect (and that the eval-mode query, with running statistics, sees).

Data: a batch must be ``{"labeled": (x, y, idx), "unlabeled": (x, y, idx)}``, what
``ActivePoolDataModule(..., unlabeled_stream=True)`` yields (a cycling unlabeled stream); the labels of
the unlabeled stream are never read.

Distributed training: the game loop (:class:`~zerosum.modules.Game`) all-reduces the gradients of the
player being updated only (one flat all-reduce per update) and broadcasts rank 0's BatchNorm buffers
after every step, so no ``find_unused_parameters`` is needed and the ranks stay identical.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn import functional as F

from zerosum.losses.pool_adversarial import PoolDiscriminatorLoss, VAEAdversarialLoss
from zerosum.losses.vae_loss import BetaVAELoss
from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import NetSpec, build_net
from zerosum.nets.discriminator import LatentDiscriminator
from zerosum.nets.vae import BetaVAE
from zerosum.optim import spec

#: VAE and discriminator: the official code's and the paper's alpha1 = alpha2 = 5e-4 (CIFAR)
ADAM = spec("torch.optim.Adam", lr=5e-4)
#: task model: the official code's optimiser (solver.py); the paper's table lists alpha3 = 5e-4
SGD = spec("torch.optim.SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)


class VAAL(LogitsEvaluation, Game):
    """VAAL's three-player game: task model, beta-VAE, latent discriminator (see the module docstring).

    Args:
        num_classes: number of classes (linked from the datamodule by the CLI).
        in_channels: image channels (linked from the datamodule).
        image_size: image side in pixels (linked from the datamodule).
        net: the task model, a name from zerosum.nets (the paper and the official code: vgg16_bn).
        net_args: extra options of the task model.
        latent_dim: VAE latent size d (32 on CIFAR, 64 on Caltech-256 and ImageNet).
        vae_base_width: channels of the first VAE block, doubled per block (paper: 128, i.e. 128-256-512-1024).
        vae_num_blocks: stride-2 blocks of the VAE (paper: 4).
        disc_hidden_dim: width of the discriminator MLP (official model.py: 512).
        disc_num_layers: linear layers of the discriminator (paper and official model.py: 5).
        beta: weight of the KL term of Eq. 1 (1 in every paper setting).
        lambda1: weight of the VAE's reconstruction term in Eq. 4.
        lambda2: weight of the VAE's adversarial term in Eq. 4.
        kl_reduction: "sum" over latent dimensions and batch (official solver.py) or "mean" per element.
        num_vae_steps: VAE updates per task-model update (official: 2).
        num_adv_steps: discriminator updates per task-model update (official: 1).
        fresh_batches: a new draw for every further VAE and D step, as the official code; the loader's batch then holds draws_per_step draws.
        task_optimizer: optimizer of the task model (default: the official SGD 0.01, momentum 0.9, wd 5e-4; the paper's alpha3).
        vae_optimizer: optimizer of the VAE (paper's alpha1; official Adam 5e-4).
        disc_optimizer: optimizer of the discriminator (paper's alpha2; official Adam 5e-4).
        task_scheduler: learning-rate schedule of the task model, stepped per task update and rebuilt each round (official: divide by 10 every quarter of the round, StepLR).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        net: NetSpec = "vgg16_bn",
        net_args: Optional[dict[str, Any]] = None,
        latent_dim: int = 32,
        vae_base_width: int = 128,
        vae_num_blocks: int = 4,
        disc_hidden_dim: int = 512,
        disc_num_layers: int = 5,
        beta: float = 1.0,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        kl_reduction: Literal["sum", "mean"] = "sum",
        num_vae_steps: int = 2,
        num_adv_steps: int = 1,
        fresh_batches: bool = True,
        task_optimizer: OptimizerCallable = SGD,
        vae_optimizer: OptimizerCallable = ADAM,
        disc_optimizer: OptimizerCallable = ADAM,
        task_scheduler: Optional[LRSchedulerCallable] = None,
    ):
        super().__init__()
        for name, value in (("num_vae_steps", num_vae_steps), ("num_adv_steps", num_adv_steps)):
            if value < 1:
                raise ValueError(f"{name}: must be >= 1 (a game with nothing to play), got {value}; allowed: 1, 2, ...")
        for name, value in (("lambda1", lambda1), ("lambda2", lambda2)):
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}; allowed: a non-negative weight")
        self.save_hyperparameters(ignore=["task_optimizer", "vae_optimizer", "disc_optimizer", "task_scheduler"])
        self.task_model: nn.Module = build_net(net, num_classes, in_channels,
                                               sample_shape=(in_channels, image_size, image_size), **(net_args or {}))
        self.vae = BetaVAE(in_channels, image_size, latent_dim, base_width=vae_base_width, num_blocks=vae_num_blocks)
        self.discriminator = LatentDiscriminator(latent_dim, disc_hidden_dim, disc_num_layers)
        self.vae_loss = BetaVAELoss(beta, kl_reduction)
        self.adversarial_loss = VAEAdversarialLoss()
        self.discriminator_loss = PoolDiscriminatorLoss()
        self.add_player("task", "task_model", task_optimizer, task_scheduler, interval="step")
        self.add_player("vae", "vae", vae_optimizer)
        self.add_player("discriminator", "discriminator", disc_optimizer)
        self.init_accuracy(num_classes)

    # ---- the task model is what the module predicts with --------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.task_model(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.task_model.features(x)

    @torch.no_grad()
    def labeled_probability(self, x: torch.Tensor) -> torch.Tensor:
        """``D(mu(x))``: how surely the discriminator believes ``x`` is labeled (used by the query)."""
        mu, _ = self.vae.encode(x)
        return self.discriminator(mu)

    # ---- the three objectives ---------------------------------------------------------------------
    def task_objective(self, x_l: torch.Tensor, y_l: torch.Tensor) -> torch.Tensor:
        """``L_T``: cross-entropy of the task model on the labeled batch (Algorithm 1, line 13)."""
        return F.cross_entropy(self.task_model(x_l), y_l)

    def vae_objective(self, x_l: torch.Tensor, x_u: torch.Tensor) -> torch.Tensor:
        """Eq. 4: ``lambda1 * L_trd (Eq. 1, labeled + unlabeled term) + lambda2 * L_adv (Eq. 2)``."""
        n = len(x_l)
        out = self.vae(torch.cat([x_l, x_u]))  # one pass: BatchNorm sees both pools (see _joint)
        trd = (self.vae_loss(out.recon[:n], x_l, out.mu[:n], out.logvar[:n])
               + self.vae_loss(out.recon[n:], x_u, out.mu[n:], out.logvar[n:]))
        logits = self.discriminator.logits(out.mu)
        adv = self.adversarial_loss(logits[:n], logits[n:])
        log_step(self, {"train/vae_trd": trd, "train/vae_adv": adv})
        return self.hparams.lambda1 * trd + self.hparams.lambda2 * adv

    def discriminator_objective(self, x_l: torch.Tensor, x_u: torch.Tensor) -> torch.Tensor:
        """Eq. 3 on the latent means of the frozen VAE (computed without gradient)."""
        n = len(x_l)
        with torch.no_grad():
            mu, _ = self.vae.encode(torch.cat([x_l, x_u]))
        logits = self.discriminator.logits(mu)
        return self.discriminator_loss(logits[:n], logits[n:])

    # ---- training ---------------------------------------------------------------------------------
    @property
    def draws_per_step(self) -> int:
        """Draws one training step uses: ``num_vae_steps + num_adv_steps - 1`` with fresh batches, else 1."""
        h = self.hparams
        return h.num_vae_steps + h.num_adv_steps - 1 if h.fresh_batches else 1

    def draws(self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """The ``(x_L, y_L, x_U)`` of each of the step's ``num_vae_steps + num_adv_steps - 1`` draws: the
        batch cut into that many parts with fresh batches, else the one batch every time (and also
        when a stream is too short to cut)."""
        k = self.hparams.num_vae_steps + self.hparams.num_adv_steps - 1
        if self.draws_per_step == 1 or min(len(x_l), len(x_u)) < k:
            return [(x_l, y_l, x_u)] * k
        return list(zip(x_l.tensor_split(k), y_l.tensor_split(k), x_u.tensor_split(k)))

    @staticmethod
    def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_L, y_L, x_U)`` from a ``{"labeled": ..., "unlabeled": ...}`` batch."""
        if not (isinstance(batch, dict) and "labeled" in batch and "unlabeled" in batch):
            raise ValueError(
                "VAAL trains on a labeled and an unlabeled stream: a batch must be a dict with keys 'labeled' "
                f"and 'unlabeled' (got {type(batch).__name__}). Wrap the data in "
                "zerosum.datamodules.ActivePoolDataModule(..., unlabeled_stream=True).")
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        return labeled[0], labeled[1], unlabeled[0]

    def training_step(self, batch, batch_idx: int) -> None:
        """VAAL Algorithm 1: T on L_T, then the VAE on Eq. 4, then D on Eq. 3; draw ``j`` feeds the
        ``j``-th VAE step (T shares the first), the D steps start on the last VAE draw."""
        draws = self.draws(*self.split_batch(batch))
        x_l, y_l, _ = draws[0]
        task_loss = self.play("task", lambda: self.task_objective(x_l, y_l))
        nv = self.hparams.num_vae_steps
        for j in range(nv):
            x_l, _, x_u = draws[j]
            vae_loss = self.play("vae", lambda: self.vae_objective(x_l, x_u))
        for i in range(self.hparams.num_adv_steps):
            x_l, _, x_u = draws[nv - 1 + i]
            disc_loss = self.play("discriminator", lambda: self.discriminator_objective(x_l, x_u))
        log_step(self, {"train/task_loss": task_loss, "train/vae_loss": vae_loss, "train/disc_loss": disc_loss},
                 prog_bar=True)
