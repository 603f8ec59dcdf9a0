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
:meth:`SRAL.probe` (the short update of the selection classifier whose accuracy change is a reward),
:meth:`SRAL.remember` and :meth:`SRAL.agent_step` (replay and one DDPG update: Eqs. 6, 4, 7),
:meth:`SRAL.retrain` (after each small budget) and :meth:`SRAL.selection_state` (what a selection
changed, for the strategy's cross-rank broadcast). Every update is a :meth:`~Game.play`.

A probe measures the pick and nothing else: a fresh plain SGD optimiser (no momentum carried from an
earlier step, no weight decay) and the selection classifier in eval mode (BatchNorm normalises with
its running statistics and does not update them), so with ``lr = 0`` nothing changes and the reward
is exactly 0.

Everything the agent knows is in ``state_dict`` (networks, targets, replay storage, noise state,
update counters) and its Adam optimisers are returned by ``configure_optimizers``, so a Lightning
checkpoint resumes the agent too. The agent, replay and noise are kept out of DDP's gradient
reduction and buffer broadcast (``_ddp_params_and_buffers_to_ignore``): they are updated outside
``training_step``, identically on every rank (see the strategy). They are also named in
``keep_across_rounds``, so :class:`~zerosum.callbacks.ActiveLearning`'s reset after each query
restarts the final learner but leaves the agent, its replay and noise, and the actor/critic optimiser
state as they are.

**The agent's features stay in one space.** The state is the selection classifier's penultimate
features; a classifier re-initialised every round would hand the agent, which learns across
rounds, a new and unrelated feature space each round. With ``keep_selector=True`` (default) the
selection classifier is also kept across rounds (it goes on training on the growing labeled set;
the final learner ``net`` is still reset, so the evaluated model follows the protocol). With
``keep_selector=False``, or ``selection_net: null`` (``net`` is reset every round and selects), the
features do move under the agent; the strategy standardises them with the pool's statistics of each
chunk either way, which keeps their scale but not their meaning.

Default actor and critic: ``mlp`` (5 fully connected layers, the structure section 4.1 reports for
the experiments); ``actor: conv`` is section 2.2's 2 conv + pooling + 3 FC variant. ``actor: shared``
with ``critic: shared`` (one per-candidate network each, :mod:`zerosum.rl`) is not the paper's: on a
planted environment (a candidate's first feature tells its reward of +-1; groups of 4, 8 features,
2 DDPG updates per transition, 2 seeds x 3 settings) the flattened pair selected rewarding and other
candidates at nearly the same rates after 300 transitions (e.g. 49% vs 51%, 63% vs 40%; its critic
memorises the replay, TD error 0.01-0.03), the shared pair 97-100% vs 1-3% after 150 (3 seeds; the
module-level check is ``tests/modules/test_sral.py``). CPU-scale runs make a few hundred
transitions, so their configs use it.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn import functional as F

from zerosum.inference import eval_mode
from zerosum.modules.evaluation import LogitsEvaluation
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import NetSpec, build_net
from zerosum.optim import spec
from zerosum.rl import DDPG, ReplayBuffer, build_actor, build_critic, build_noise


class SRAL(LogitsEvaluation, Game):
    """Networks, agent state and updates of SRAL.

    Args:
        num_classes: number of classes (linked from the datamodule by the CLI).
        in_channels: image channels (linked from the datamodule).
        net: the final learner, a zerosum.nets name (paper: ResNet-18).
        net_args: extra options of the final learner.
        selection_net: the classifier used while selecting (paper: a traditional CNN); null: net selects.
        selection_net_args: extra options of the selection classifier.
        keep_selector: keep the selection classifier across rounds (not reset with the final learner), so the agent's features stay in one space.
        optimizer: optimizer of the final learner (default: the paper's SGD, section 4.1).
        scheduler: learning-rate scheduler of the final learner, or null.
        scheduler_interval: step the final learner's scheduler per "epoch" or per optimizer "step".
        selection_optimizer: optimizer of the selection classifier (default: the paper's SGD).
        actor_optimizer: optimizer of the actor (default: Adam lr 1e-4, section 4.1).
        critic_optimizer: optimizer of the critic (default: Adam lr 1e-4, section 4.1).
        group_size: n, the candidates of one state (Eq. 1; not given in the paper).
        actor: "mlp" (5 fully connected layers, section 4.1), "conv" (2 conv + pooling + 3 FC, section 2.2) or "shared" (one per-candidate MLP; learns from few transitions).
        actor_args: options of the actor, e.g. {hidden: 256, depth: 5}.
        critic: "mlp" (5 fully connected layers, section 4.1) or "shared" (a sum of per-candidate values; the partner of actor "shared").
        critic_args: options of the critic, e.g. {hidden: 256, depth: 5}.
        gamma: discount of Eq. 3 (paper: 0.99).
        tau: soft-update weight lambda of Eq. 7 (paper: 0.01).
        replay_capacity: transitions kept in the replay buffer (paper: 3000).
        replay_warmup: transitions stored before DDPG updates start (paper: 128).
        replay_batch_size: replay minibatch of one DDPG update (paper: 64).
        noise: exploration noise, "gaussian" (default) or "ou" (see zerosum.rl.noise).
        noise_args: options of the noise, e.g. {sigma: 0.3}.
    """

    #: what ActiveLearning(reinit=True) leaves alone: the agent learns across rounds (and, with
    #: ``keep_selector``, an instance attribute adds the selection classifier)
    keep_across_rounds: tuple[str, ...] = ("agent", "replay", "noise")

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        net: NetSpec = "resnet18_cifar",
        net_args: Optional[dict[str, Any]] = None,
        selection_net: Optional[NetSpec] = "small_cnn",
        selection_net_args: Optional[dict[str, Any]] = None,
        keep_selector: bool = True,
        optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.01, momentum=0.9, weight_decay=5e-4),
        scheduler: Optional[LRSchedulerCallable] = None,
        scheduler_interval: str = "epoch",
        selection_optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.01, momentum=0.9, weight_decay=5e-4),
        actor_optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-4),
        critic_optimizer: OptimizerCallable = spec("torch.optim.Adam", lr=1e-4),
        group_size: int = 10,
        actor: str = "mlp",
        actor_args: Optional[dict[str, Any]] = None,
        critic: str = "mlp",
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
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval: {scheduler_interval!r}; allowed: epoch, step")
        for name, value in (("group_size", group_size), ("replay_batch_size", replay_batch_size)):
            if value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}; allowed: 1, 2, ...")
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "selection_optimizer", "actor_optimizer", "critic_optimizer"])
        self.net: nn.Module = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.selection_net: Optional[nn.Module] = (
            build_net(selection_net, num_classes, in_channels, argument="selection_net",
                      **(selection_net_args or {})) if selection_net else None
        )
        n, d = group_size, self.selector.feature_dim
        self.agent = DDPG(build_actor(actor, n, d, **(actor_args or {})), build_critic(critic, n, d, **(critic_args or {})),
                          gamma=gamma, tau=tau)
        self.replay = ReplayBuffer(replay_capacity, (n, d), n, warmup=replay_warmup)
        self.noise = build_noise(noise, n, **(noise_args or {}))
        # the order of configure_optimizers, which ActiveLearning's reset matches by position
        self.add_player("net", "net", optimizer, scheduler, scheduler_interval)
        if self.selection_net is not None:
            self.add_player("selector", "selection_net", selection_optimizer)
        self.add_player("actor", "agent.actor", actor_optimizer)
        self.add_player("critic", "agent.critic", critic_optimizer)
        if keep_selector and self.selection_net is not None:
            self.keep_across_rounds = type(self).keep_across_rounds + ("selection_net",)
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

    def probe(self, inputs: torch.Tensor, y: torch.Tensor, lr: float, steps: int = 1, head_only: bool = False) -> None:
        """``steps`` cross-entropy updates of the selection classifier on the picked samples: the
        update ``phi_{i-1} -> phi_i`` whose accuracy change is the reward (Eq. 2). A fresh plain SGD
        (no momentum, no weight decay), the classifier in eval mode (BatchNorm frozen: running
        statistics neither used from the batch nor updated). ``head_only``: ``inputs`` are penultimate
        features and only the linear ``head`` moves (the backbone, hence the state, stays)."""
        net = self.selector
        if head_only and not isinstance(getattr(net, "head", None), nn.Module):
            raise TypeError(f"probe_scope: 'head' needs a selection classifier with a linear `head` "
                            f"(zerosum.nets.FeatureClassifier), {type(net).__name__} has none; allowed: 'all'")
        forward = net.head if head_only else net
        params = [p for p in forward.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=lr)
        with eval_mode(net), torch.enable_grad():
            for _ in range(steps):
                self.play(self.selector_player, lambda: F.cross_entropy(forward(inputs), y), optimizer=opt)

    def retrain(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], lr: float) -> None:
        """One update of the selection classifier per batch of the grown labeled set (after each small
        budget ``b``), in training mode, with a fresh SGD of the paper's classifier settings (section
        4.1: momentum 0.9, weight decay 5e-4) at ``lr``; a batch of one sample is skipped (BatchNorm
        needs two)."""
        net = self.selector
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr, momentum=0.9,
                              weight_decay=5e-4)
        net.train()
        with torch.enable_grad():
            for x, y in batches:
                if len(x) > 1:
                    self.play(self.selector_player, lambda: F.cross_entropy(net(x), y), optimizer=opt)

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
        the actor with the critic frozen (Eq. 4), the soft target update (Eq. 7, counted in
        ``agent.updates``). Returns the two losses, or None during warm-up."""
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
