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

from typing import Any, Optional

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F

from zerosum.losses.pool_adversarial import PoolDiscriminatorLoss, VAEAdversarialLoss
from zerosum.losses.vae_loss import BetaVAELoss
from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import build_net
from zerosum.nets.discriminator import LatentDiscriminator
from zerosum.nets.vae import BetaVAE
from zerosum.optim import spec

#: the paper's default for all three players (alpha1 = alpha2 = alpha3 = 5e-4 on CIFAR)
ADAM = spec("torch.optim.Adam", lr=5e-4)


class VAAL(LogitsEvaluation, Game):
    """Args:
        num_classes / in_channels / image_size: linked from the datamodule by the CLI.
        net / net_args: the task model (a name from :mod:`zerosum.nets`; the paper uses ``vgg16_bn``).
        latent_dim: VAE latent size ``d`` (32 CIFAR, 64 Caltech-256/ImageNet).
        vae_base_width / vae_num_blocks: VAE encoder widths ``base * 2**i`` for ``num_blocks`` blocks
            (paper: 128 and 4, i.e. 128-256-512-1024).
        disc_hidden_dim / disc_num_layers: discriminator MLP (paper: 5 layers; official code: 3, width 512).
        beta / lambda1 / lambda2: weights of Eqs. 1 and 4.
        num_vae_steps / num_adv_steps: VAE and D updates per task-model update (official: 2 and 1).
        task_optimizer / vae_optimizer / disc_optimizer: optimizer callables (learning rates alpha3,
            alpha1, alpha2 of the paper's table).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        net: str = "vgg16_bn",
        net_args: Optional[dict[str, Any]] = None,
        latent_dim: int = 32,
        vae_base_width: int = 128,
        vae_num_blocks: int = 4,
        disc_hidden_dim: int = 512,
        disc_num_layers: int = 5,
        beta: float = 1.0,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        num_vae_steps: int = 2,
        num_adv_steps: int = 1,
        task_optimizer: OptimizerCallable = ADAM,
        vae_optimizer: OptimizerCallable = ADAM,
        disc_optimizer: OptimizerCallable = ADAM,
    ):
        super().__init__()
        if num_vae_steps < 1 or num_adv_steps < 1:
            raise ValueError(f"VAAL: num_vae_steps and num_adv_steps must be >= 1, got {num_vae_steps} and "
                             f"{num_adv_steps}")
        if lambda1 < 0 or lambda2 < 0:
            raise ValueError(f"VAAL: lambda1 and lambda2 must be >= 0, got {lambda1} and {lambda2}")
        self.save_hyperparameters(ignore=["task_optimizer", "vae_optimizer", "disc_optimizer"])
        self.task_model: nn.Module = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.vae = BetaVAE(in_channels, image_size, latent_dim, base_width=vae_base_width, num_blocks=vae_num_blocks)
        self.discriminator = LatentDiscriminator(latent_dim, disc_hidden_dim, disc_num_layers)
        self.vae_loss = BetaVAELoss(beta)
        self.adversarial_loss = VAEAdversarialLoss()
        self.discriminator_loss = PoolDiscriminatorLoss()
        self.add_player("task", "task_model", task_optimizer)
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
        """VAAL Algorithm 1: T on L_T, then the VAE on Eq. 4, then D on Eq. 3."""
        x_l, y_l, x_u = self.split_batch(batch)
        task_loss = self.play("task", lambda: self.task_objective(x_l, y_l))
        for _ in range(self.hparams.num_vae_steps):
            vae_loss = self.play("vae", lambda: self.vae_objective(x_l, x_u))
        for _ in range(self.hparams.num_adv_steps):
            disc_loss = self.play("discriminator", lambda: self.discriminator_objective(x_l, x_u))
        log_step(self, {"train/task_loss": task_loss, "train/vae_loss": vae_loss, "train/disc_loss": disc_loss},
                 prog_bar=True)
