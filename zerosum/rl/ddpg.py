"""DDPG (Lillicrap et al.) as used by SRAL (Jiu et al., J. Graphics 2026, Eqs. 3-7).

- Critic, Eq. (6): ``min_c (r + gamma Q'(S', pi'(S')) - Q(S, a))^2`` with target networks ``Q'``, ``pi'``.
- Actor, Eq. (4): ``max_a Q(S, pi(S))``, i.e. minimise ``-Q(S, pi(S))``.
- Soft target update, Eq. (7): ``theta' := lambda theta + (1 - lambda) theta'`` (lambda = 0.01).

:class:`DDPG` owns the four networks and the math of each step (:meth:`DDPG.critic_loss`,
:meth:`DDPG.actor_loss`, :meth:`DDPG.soft_update`). Its owner does the updates: SRAL plays the critic
and the actor as two players of its game (:meth:`zerosum.modules.SRAL.agent_step`), with the
optimisers of its ``configure_optimizers`` (checkpointed with it). :meth:`DDPG.update` is the same
step with plain optimisers, for the agent on its own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


class DDPG(nn.Module):
    """Actor, critic and their target copies.

    Args:
        actor: ``(B, *state) -> (B, action_dim)``.
        critic: ``(state, action) -> (B,)``.
        gamma: discount (paper: 0.99).
        tau: soft-update weight lambda of Eq. (7) (paper: 0.01).
    """

    def __init__(self, actor: nn.Module, critic: nn.Module, gamma: float = 0.99, tau: float = 0.01):
        super().__init__()
        if not 0 <= gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if not 0 < tau <= 1:
            raise ValueError(f"tau (lambda of Eq. 7) must be in (0, 1], got {tau}")
        self.gamma, self.tau = gamma, tau
        self.actor, self.critic = actor, critic
        self.actor_target = copy.deepcopy(actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        # how many DDPG updates the agent has made (one soft target update closes each): a buffer, so
        # it travels with the checkpoint and the learning curves keep counting across resumes
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def act(self, state: torch.Tensor) -> torch.Tensor:
        """Deterministic action pi(S) for one unbatched state (no noise)."""
        return self.actor(state.unsqueeze(0)).squeeze(0)

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. (6): squared TD error against the target networks."""
        with torch.no_grad():
            next_q = self.critic_target(batch["next_states"], self.actor_target(batch["next_states"]))
            target = batch["rewards"] + self.gamma * next_q
        return F.mse_loss(self.critic(batch["states"], batch["actions"]), target)

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. (4): ``-Q(S, pi(S))`` averaged over the minibatch (the critic is not updated by it)."""
        return -self.critic(batch["states"], self.actor(batch["states"])).mean()

    @torch.no_grad()
    def soft_update(self) -> None:
        """Eq. (7): ``theta' := tau theta + (1 - tau) theta'`` for both target networks; the last act
        of every DDPG update, so it also counts them (:attr:`updates`)."""
        self.updates += 1
        for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            for p, t in zip(net.parameters(), target.parameters()):
                t.lerp_(p, self.tau)
            for b, tb in zip(net.buffers(), target.buffers()):
                tb.copy_(b)

    def update(self, batch: dict[str, torch.Tensor], actor_optimizer: torch.optim.Optimizer,
               critic_optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One DDPG step on a replay minibatch with plain optimisers (the agent on its own; SRAL plays
        it through its game): critic (Eq. 6), actor (Eq. 4), soft update (Eq. 7)."""
        critic_loss = self.critic_loss(batch)
        critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_optimizer.step()

        self.critic.requires_grad_(False)  # the actor step must not touch the critic's gradients
        actor_loss = self.actor_loss(batch)
        actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_optimizer.step()
        self.critic.requires_grad_(True)

        self.soft_update()
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}
