"""SRAL: smart reinforcement active learning (Jiu, Wu, Song, Li, Xu, "Image classification method
based on uncertainty-driven smart reinforcement active learning", J. Graphics 47(1), 2026).

This LightningModule holds every network of the method; the selection procedure itself (entropy
pre-ranking, the MDP walk, rewards, DDPG updates) is :class:`zerosum.query.SRALStrategy`, which plugs
into :class:`zerosum.callbacks.ActiveLearning`.

- ``net``: the final learner (paper: ResNet-18), trained by the Lightning loop on the labeled set and
  evaluated at every reporting point (``val/acc``, ``test/acc``).
- ``selection_net``: the classifier used *during selection* (paper section 4.1: "a traditional CNN",
  SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128). It is trained alongside ``net`` on the
  same labeled batches, it pre-ranks the pool by entropy, its penultimate features are the state
  (Eq. 1) and its validation accuracy gives the reward (Eq. 2). ``selection_net: null`` uses ``net``
  for all of that (the paper's section 2.2 reading: ResNet-18 features).
- ``agent``: :class:`zerosum.rl.DDPG` (actor, critic, target networks; Eqs. 3-7), ``replay``
  (:class:`zerosum.rl.ReplayBuffer`, 3000 / warm-up 128) and ``noise`` (exploration).

Everything the agent knows is in ``state_dict`` (networks, targets, replay storage, noise state) and
its Adam optimisers are returned by ``configure_optimizers``, so a Lightning checkpoint resumes the
agent too. Optimisation is manual: ``training_step`` steps the classifier optimisers; the strategy
steps the actor and critic optimisers (``agent_optimizers``). The agent, replay and noise are kept out
of DDP's gradient reduction and buffer broadcast (``_ddp_params_and_buffers_to_ignore``): they are
updated outside ``training_step``, identically on every rank (see the strategy). They are also named
in ``keep_across_rounds``, so :class:`~zerosum.callbacks.ActiveLearning`'s reset after each query
restarts the classifiers but leaves the agent, its replay and noise, and the actor/critic optimiser
state as they are.

Default actor: ``mlp`` (5 fully connected layers, the structure section 4.1 reports for the
experiments); ``actor: conv`` is section 2.2's 2 conv + pooling + 3 FC variant.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F

from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.step_logging import log_step
from zerosum.nets import build_net
from zerosum.rl import DDPG, Critic, ReplayBuffer, build_actor, build_noise


def paper_sgd(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """The paper's classifier optimiser (section 4.1)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def agent_adam(params, lr: float = 1e-4) -> torch.optim.Optimizer:
    """The paper's actor/critic optimiser (section 4.1: Adam, lr 1e-4)."""
    return torch.optim.Adam(params, lr=lr)


class SRAL(LogitsEvaluation, L.LightningModule):
    """Networks and agent state of SRAL.

    Args:
        num_classes / in_channels: linked from the datamodule by the CLI.
        net / net_args: final learner (a :mod:`zerosum.nets` name).
        selection_net / selection_net_args: classifier used while selecting (``null``: use ``net``).
        optimizer / selection_optimizer: classifier optimisers (default: paper's SGD).
        actor_optimizer / critic_optimizer: agent optimisers (default: Adam lr 1e-4).
        group_size: ``n``, candidates per state (Eq. 1).
        actor: ``"mlp"`` (5 FC, default) or ``"conv"`` (2 conv + pooling + 3 FC); ``actor_args`` /
            ``critic_args``: e.g. ``{hidden: 256, depth: 5}``.
        gamma / tau: discount and soft-update lambda (0.99 / 0.01).
        replay_capacity / replay_warmup / replay_batch_size: 3000 / 128 / 64.
        noise / noise_args: exploration noise (``gaussian`` default, or ``ou``), see :mod:`zerosum.rl.noise`.
    """

    # the agent learns across rounds: ActiveLearning(reinit=True) resets only the classifiers
    keep_across_rounds = ("agent", "replay", "noise")

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: str = "resnet18_cifar",
        net_args: Optional[dict[str, Any]] = None,
        selection_net: Optional[str] = "small_cnn",
        selection_net_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = paper_sgd,
        selection_optimizer: OptimizerCallable = paper_sgd,
        actor_optimizer: OptimizerCallable = agent_adam,
        critic_optimizer: OptimizerCallable = agent_adam,
        group_size: int = 10,
        actor: str = "mlp",
        actor_args: Optional[dict[str, Any]] = None,
        critic_args: Optional[dict[str, Any]] = None,
        gamma: float = 0.99,
        tau: float = 0.01,
        replay_capacity: int = 3000,
        replay_warmup: int = 128,
        replay_batch_size: int = 64,
        noise: str = "gaussian",
        noise_args: Optional[dict[str, Any]] = None,
    ):
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size (n) must be >= 1, got {group_size}")
        if replay_batch_size < 1:
            raise ValueError(f"replay_batch_size must be >= 1, got {replay_batch_size}")
        self.save_hyperparameters(ignore=["optimizer", "selection_optimizer", "actor_optimizer", "critic_optimizer"])
        self.automatic_optimization = False
        self.net: nn.Module = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.selection_net: Optional[nn.Module] = (
            build_net(selection_net, num_classes, in_channels, **(selection_net_args or {})) if selection_net else None
        )
        n, d = group_size, self.selector.feature_dim
        self.agent = DDPG(build_actor(actor, n, d, **(actor_args or {})), Critic(n, d, **(critic_args or {})),
                          gamma=gamma, tau=tau)
        self.replay = ReplayBuffer(replay_capacity, (n, d), n, warmup=replay_warmup)
        self.noise = build_noise(noise, n, **(noise_args or {}))
        self.optimizer, self.selection_optimizer = optimizer, selection_optimizer
        self.actor_optimizer, self.critic_optimizer = actor_optimizer, critic_optimizer
        self.init_accuracy(num_classes)
        # updated outside training_step, identically on every rank: not DDP's business
        self._ddp_params_and_buffers_to_ignore = [
            f"{prefix}.{name}" for prefix, part in (("agent", self.agent), ("replay", self.replay), ("noise", self.noise))
            for name, _ in list(part.named_parameters()) + list(part.named_buffers())
        ]

    @property
    def selector(self) -> nn.Module:
        """The classifier that ranks, gives state features and rewards during selection."""
        return self.selection_net if self.selection_net is not None else self.net

    @property
    def group_size(self) -> int:
        return self.hparams.group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    # ---- classifiers (manual optimisation) ------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        opts = self.optimizers()
        classifier_opts = opts[: 2 if self.selection_net is not None else 1]
        loss = F.cross_entropy(self.net(x), y)
        if self.selection_net is not None:
            loss = loss + F.cross_entropy(self.selection_net(x), y)
        for opt in classifier_opts:
            opt.zero_grad()
        self.manual_backward(loss)
        for opt in classifier_opts:
            opt.step()
        log_step(self, {"train/loss": loss}, prog_bar=True)
        return loss.detach()


    def configure_optimizers(self):
        opts = [self.optimizer(self.net.parameters())]
        if self.selection_net is not None:
            opts.append(self.selection_optimizer(self.selection_net.parameters()))
        opts += [self.actor_optimizer(self.agent.actor.parameters()),
                 self.critic_optimizer(self.agent.critic.parameters())]
        return opts

    # ---- agent ------------------------------------------------------------------------------------
    def agent_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """The raw (actor, critic) optimisers: the trainer's when attached, else created once here."""
        trainer = self._trainer
        if trainer is not None and trainer.optimizers:
            opts = trainer.optimizers
            return opts[-2], opts[-1]
        if not hasattr(self, "_standalone_agent_opts"):
            self._standalone_agent_opts = self.configure_optimizers()[-2:]
        return self._standalone_agent_opts[0], self._standalone_agent_opts[1]

    def agent_step(self, generator: Optional[torch.Generator] = None) -> Optional[dict[str, float]]:
        """One DDPG update (Eqs. 4, 6, 7) on a replay minibatch, once the buffer is past warm-up."""
        if not self.replay.ready:
            return None
        opt_a, opt_c = self.agent_optimizers()
        with torch.enable_grad():
            return self.agent.update(self.replay.sample(self.hparams.replay_batch_size, generator), opt_a, opt_c)
