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

Each player's update is an isolated ``toggle -> loss -> backward -> step`` so it reads like its equation.

The labeled and unlabeled batches go through the VAE in **one** forward pass (concatenated): in
training mode BatchNorm normalises with batch statistics, and two separate passes (as in the official
code) would normalise each pool by its own statistics, erasing exactly the first-moment shift between
the pools that D is meant to detect (and that the eval-mode query, with running statistics, sees).

Data: a batch must be ``{"labeled": (x, y, idx), "unlabeled": (x, y, idx)}``, what
``ActivePoolDataModule(..., unlabeled_stream=True)`` yields (a cycling unlabeled stream); the labels of
the unlabeled stream are never read.

Distributed training: the three players update in turn, so one DDP reducer over the whole module
would need ``find_unused_parameters=True`` and would all-reduce every player's (zero) gradients at each
of the 4 backward passes. Instead, the module runs its backward passes outside the DDP reducer
(``no_sync``) and all-reduces the gradients of the player being updated only (one flat all-reduce per
update); BatchNorm buffers are broadcast from rank 0 after every step (DDP's own buffer rule). No
``find_unused_parameters`` is needed and the ranks stay identical.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from zerosum.losses.pool_adversarial import PoolDiscriminatorLoss, VAEAdversarialLoss
from zerosum.losses.vae_loss import BetaVAELoss
from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.step_logging import log_step
from zerosum.nets import build_net
from zerosum.nets.discriminator import LatentDiscriminator
from zerosum.nets.vae import BetaVAE


def adam(params, lr: float = 5e-4) -> torch.optim.Optimizer:
    """The paper's default for all three players (alpha1 = alpha2 = alpha3 = 5e-4 on CIFAR)."""
    return torch.optim.Adam(params, lr=lr)


class VAAL(LogitsEvaluation, L.LightningModule):
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
        task_optimizer: OptimizerCallable = adam,
        vae_optimizer: OptimizerCallable = adam,
        disc_optimizer: OptimizerCallable = adam,
    ):
        super().__init__()
        if num_vae_steps < 1 or num_adv_steps < 1:
            raise ValueError(f"VAAL: num_vae_steps and num_adv_steps must be >= 1, got {num_vae_steps} and "
                             f"{num_adv_steps}")
        if lambda1 < 0 or lambda2 < 0:
            raise ValueError(f"VAAL: lambda1 and lambda2 must be >= 0, got {lambda1} and {lambda2}")
        self.save_hyperparameters(ignore=["task_optimizer", "vae_optimizer", "disc_optimizer"])
        self.automatic_optimization = False
        self.task_model: nn.Module = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.vae = BetaVAE(in_channels, image_size, latent_dim, base_width=vae_base_width, num_blocks=vae_num_blocks)
        self.discriminator = LatentDiscriminator(latent_dim, disc_hidden_dim, disc_num_layers)
        self.vae_loss = BetaVAELoss(beta)
        self.adversarial_loss = VAEAdversarialLoss()
        self.discriminator_loss = PoolDiscriminatorLoss()
        self.task_optimizer, self.vae_optimizer, self.disc_optimizer = task_optimizer, vae_optimizer, disc_optimizer
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
        x_l, y_l, x_u = self.split_batch(batch)
        opt_task, opt_vae, opt_disc = self.optimizers()
        with self._outside_ddp_reducer():
            task_loss = self._update(opt_task, self.task_model, lambda: self.task_objective(x_l, y_l))
            for _ in range(self.hparams.num_vae_steps):
                vae_loss = self._update(opt_vae, self.vae, lambda: self.vae_objective(x_l, x_u))
            for _ in range(self.hparams.num_adv_steps):
                disc_loss = self._update(opt_disc, self.discriminator, lambda: self.discriminator_objective(x_l, x_u))
        self._broadcast_buffers()
        log_step(self, {"train/task_loss": task_loss, "train/vae_loss": vae_loss, "train/disc_loss": disc_loss},
                 prog_bar=True)

    def _update(self, optimizer, player: nn.Module, objective) -> torch.Tensor:
        """One gradient step of ``player`` on ``objective()``, the other players frozen."""
        with self.toggled_optimizer(optimizer):
            loss = objective()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self._all_reduce_grads(player)
            optimizer.step()
        return loss.detach()

    # ---- distributed plumbing (no-ops on one process) ---------------------------------------------
    def _ddp_wrapper(self) -> Optional[DistributedDataParallel]:
        model = self._trainer.strategy.model if self._trainer is not None else None
        return model if isinstance(model, DistributedDataParallel) else None

    @contextlib.contextmanager
    def _outside_ddp_reducer(self) -> Iterator[None]:
        ddp = self._ddp_wrapper()
        with ddp.no_sync() if ddp is not None else contextlib.nullcontext():
            yield

    def _world(self) -> int:
        """Ranks this module synchronises itself: only under Lightning's DDP wrapper (other strategies,
        e.g. FSDP or DeepSpeed, do not run here; single-process runs are no-ops)."""
        return dist.get_world_size() if self._ddp_wrapper() is not None else 1

    def _all_reduce_grads(self, player: nn.Module) -> None:
        """Average ``player``'s gradients over ranks (one flat all-reduce)."""
        world = self._world()
        grads = [p.grad for p in player.parameters() if p.grad is not None]
        if world == 1 or not grads:
            return
        flat = _flatten(grads)
        dist.all_reduce(flat)
        _unflatten_into(flat / world, grads)

    def _broadcast_buffers(self) -> None:
        """Rank 0's BatchNorm statistics on every rank (DDP's buffer rule), one broadcast per dtype."""
        if self._world() == 1:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for buf in self.buffers():
            by_dtype.setdefault(buf.dtype, []).append(buf)
        for bufs in by_dtype.values():
            flat = _flatten(bufs)
            dist.broadcast(flat, src=0)
            _unflatten_into(flat, bufs)

    def configure_optimizers(self):
        return (self.task_optimizer(self.task_model.parameters()), self.vae_optimizer(self.vae.parameters()),
                self.disc_optimizer(self.discriminator.parameters()))

    # ---- evaluation of the task model -------------------------------------------------------------


def _flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _unflatten_into(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    for t in tensors:
        t.data.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
