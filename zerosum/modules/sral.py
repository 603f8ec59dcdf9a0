"""SRAL: smart reinforcement active learning (Jiu, Wu, Song, Li, Xu, "Image classification method
based on uncertainty-driven smart reinforcement active learning", J. Graphics 47(1), 2026).

This module is SRAL's game (:class:`zerosum.modules.game.Game`): its networks, the agent's state and
every update of the method. Four players, in this order (the order of ``configure_optimizers``):

- ``net``: the final learner (paper: ResNet-18), trained by the Lightning loop on the labeled set and
  evaluated at every reporting point (``val/acc``, ``test/acc``).
- ``selector``: ``selection_net``, the classifier used *during selection* (paper section 4.1: "a
  traditional CNN", SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128). It is trained
  alongside ``net`` on the same labeled batches, it pre-ranks the pool by entropy, its penultimate
  features are the state (Eq. 1) and its validation accuracy gives the reward (Eq. 2). With
  ``selection_net: null`` there is no such player and ``net`` does all of that (the paper's section
  2.2 reading: ResNet-18 features).
- ``actor`` and ``critic``: of the agent, :class:`zerosum.rl.DDPG` (with its target networks; Eqs.
  3-7), Adam lr 1e-4. ``replay`` (:class:`zerosum.rl.ReplayBuffer`, 3000 / warm-up 128) and ``noise``
  (exploration) complete the agent.

The selection procedure (pre-ranking, the walk over the pool, rewards) is
:class:`zerosum.query.SRALStrategy`, which plugs into :class:`zerosum.callbacks.ActiveLearning` and
asks this module for every decision and update: :meth:`SRAL.act` (the noisy action on a state),
:meth:`SRAL.probe` (the short update of the selection classifier before a reward),
:meth:`SRAL.remember` and :meth:`SRAL.agent_step` (replay and one DDPG update: Eqs. 6, 4, 7),
:meth:`SRAL.retrain` (after each small budget) and :meth:`SRAL.selection_state` (what a selection
changed, for the strategy's cross-rank broadcast). Every update is a :meth:`~Game.play`.

Everything the agent knows is in ``state_dict`` (networks, targets, replay storage, noise state) and
its Adam optimisers are returned by ``configure_optimizers``, so a Lightning checkpoint resumes the
agent too. The agent, replay and noise are kept out of DDP's gradient reduction and buffer broadcast
(``_ddp_params_and_buffers_to_ignore``): they are updated outside ``training_step``, identically on
every rank (see the strategy). They are also named in ``keep_across_rounds``, so
:class:`~zerosum.callbacks.ActiveLearning`'s reset after each query restarts the classifiers but
leaves the agent, its replay and noise, and the actor/critic optimiser state as they are.

Default actor: ``mlp`` (5 fully connected layers, the structure section 4.1 reports for the
experiments); ``actor: conv`` is section 2.2's 2 conv + pooling + 3 FC variant.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F

from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import build_net
from zerosum.optim import spec
from zerosum.rl import DDPG, Critic, ReplayBuffer, build_actor, build_noise


class SRAL(LogitsEvaluation, Game):
    """Networks, agent state and updates of SRAL.

    Args:
        num_classes / in_channels: linked from the datamodule by the CLI.
        net / net_args: final learner (a :mod:`zerosum.nets` name).
        selection_net / selection_net_args: classifier used while selecting (``null``: use ``net``).
        optimizer / selection_optimizer: classifier optimisers (default: the paper's SGD, section 4.1).
        actor_optimizer / critic_optimizer: agent optimisers (default: Adam lr 1e-4, section 4.1).
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
        optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.01, momentum=0.9, weight_decay=5e-4),
        selection_optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.01, momentum=0.9, weight_decay=5e-4),
        actor_optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-4),
        critic_optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-4),
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
        self.net: nn.Module = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.selection_net: Optional[nn.Module] = (
            build_net(selection_net, num_classes, in_channels, **(selection_net_args or {})) if selection_net else None
        )
        n, d = group_size, self.selector.feature_dim
        self.agent = DDPG(build_actor(actor, n, d, **(actor_args or {})), Critic(n, d, **(critic_args or {})),
                          gamma=gamma, tau=tau)
        self.replay = ReplayBuffer(replay_capacity, (n, d), n, warmup=replay_warmup)
        self.noise = build_noise(noise, n, **(noise_args or {}))
        # the order of configure_optimizers, which ActiveLearning's reset matches by position
        self.add_player("net", "net", optimizer)
        if self.selection_net is not None:
            self.add_player("selector", "selection_net", selection_optimizer)
        self.add_player("actor", "actor", actor_optimizer)
        self.add_player("critic", "critic", critic_optimizer)
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
    def selector_player(self) -> str:
        """The player that owns :attr:`selector`."""
        return "selector" if self.selection_net is not None else "net"

    @property
    def actor(self) -> nn.Module:
        """The agent's actor ``pi(S)`` (player ``actor``)."""
        return self.agent.actor

    @property
    def critic(self) -> nn.Module:
        """The agent's critic ``Q(S, a)`` (player ``critic``)."""
        return self.agent.critic

    @property
    def group_size(self) -> int:
        return self.hparams.group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    # ---- classifiers --------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        loss = self.play("net", lambda: F.cross_entropy(self.net(x), y))
        if self.selection_net is not None:
            loss = loss + self.play("selector", lambda: F.cross_entropy(self.selection_net(x), y))
        log_step(self, {"train/loss": loss}, prog_bar=True)
        return loss

    def probe(self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, steps: int = 1) -> None:
        """``steps`` cross-entropy updates of the selection classifier on ``(x, y)`` with ``optimizer``
        (the strategy's probe optimiser): the update ``phi_{i-1} -> phi_i`` whose accuracy change is
        the reward (Eq. 2)."""
        self.selector.train()
        with torch.enable_grad():
            for _ in range(steps):
                self.play(self.selector_player, lambda: F.cross_entropy(self.selector(x), y), optimizer=optimizer)

    def retrain(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], optimizer: torch.optim.Optimizer) -> None:
        """One update of the selection classifier per batch of the grown labeled set (after each small
        budget ``b``); a batch of one sample is skipped (BatchNorm needs two)."""
        for x, y in batches:
            if len(x) > 1:
                self.probe(x, y, optimizer)

    # ---- agent --------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, state: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The exploring action ``pi(S) + noise`` in [-1, 1] on one ``(n, d)`` state (Eq. 1); an action
        ``>= 0`` selects its candidate."""
        return self.noise(self.agent.act(state), generator)

    def remember(self, state: torch.Tensor, action: torch.Tensor, reward: float, next_state: torch.Tensor) -> None:
        """Store the transition ``(S, a, r, S')`` in the replay buffer."""
        self.replay.add(state, action, reward, next_state)

    def agent_step(self, generator: Optional[torch.Generator] = None) -> Optional[dict[str, float]]:
        """One DDPG update on a replay minibatch, once the buffer is past warm-up: the critic (Eq. 6),
        the actor with the critic frozen (Eq. 4), the soft target update (Eq. 7)."""
        if not self.replay.ready:
            return None
        batch = self.replay.sample(self.hparams.replay_batch_size, generator)
        with torch.enable_grad():
            critic_loss = self.play("critic", lambda: self.agent.critic_loss(batch))  # Eq. (6)
            actor_loss = self.play("actor", lambda: self.agent.actor_loss(batch))  # Eq. (4), the critic frozen
        self.agent.soft_update()  # Eq. (7)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    def selection_state(self) -> dict[str, torch.Tensor]:
        """What a selection changes (agent, replay, noise, selection classifier), on the CPU: the
        entries the strategy broadcasts from rank 0 after a selection."""
        keep = ("agent.", "replay.", "noise.", "selection_net." if self.selection_net is not None else "net.")
        return {k: v.detach().cpu() for k, v in self.state_dict().items() if k.startswith(keep)}
