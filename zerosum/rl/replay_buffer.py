"""Experience replay for DDPG (Jiu et al. 2026, end of section 2.2: transitions (S, a, S', r) are
stored and random minibatches drawn to break their correlation; section 4.1: capacity 3000, sampling
only once more than 128 transitions are stored, minibatch 64).

The storage is made of registered buffers, so the buffer travels with ``state_dict``: a checkpoint of
the module that owns it resumes the agent with its experience. It is a ring: once ``capacity`` is
reached the oldest transition is overwritten.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


class ReplayBuffer(nn.Module):
    """Ring buffer of ``(state, action, reward, next_state)``.

    Args:
        capacity: the most transitions kept (paper: 3000).
        state_shape: shape of one state, e.g. ``(n, d)``.
        action_dim: length of one action vector (``n``).
        warmup: :attr:`ready` (and :meth:`sample`) only once this many transitions are stored (128).
    """

    def __init__(self, capacity: int, state_shape: Sequence[int], action_dim: int, warmup: int = 128):
        super().__init__()
        if capacity <= 0:
            raise ValueError(f"replay buffer capacity must be positive, got {capacity}")
        if not 0 <= warmup <= capacity:
            raise ValueError(f"replay warmup must be in [0, capacity={capacity}], got {warmup}")
        self.capacity, self.warmup = capacity, warmup
        self.register_buffer("states", torch.zeros(capacity, *state_shape))
        self.register_buffer("actions", torch.zeros(capacity, action_dim))
        self.register_buffer("rewards", torch.zeros(capacity))
        self.register_buffer("next_states", torch.zeros(capacity, *state_shape))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))
        self.register_buffer("size", torch.zeros((), dtype=torch.long))
        self.register_buffer("total", torch.zeros((), dtype=torch.long))  # transitions ever added

    def __len__(self) -> int:
        return int(self.size)

    @property
    def ready(self) -> bool:
        """Enough transitions stored to start DDPG updates."""
        return len(self) >= max(self.warmup, 1)

    @torch.no_grad()
    def add(self, state: torch.Tensor, action: torch.Tensor, reward, next_state: torch.Tensor) -> None:
        """Store one transition (unbatched tensors: ``state`` of ``state_shape``, ``action`` of ``action_dim``)."""
        i = int(self.position)
        self.states[i] = state.to(self.states)
        self.actions[i] = action.to(self.actions)
        self.rewards[i] = float(reward)
        self.next_states[i] = next_state.to(self.next_states)
        self.position.fill_((i + 1) % self.capacity)
        self.size.fill_(min(int(self.size) + 1, self.capacity))
        self.total += 1

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """A uniform random minibatch (with replacement) as a dict of batched tensors."""
        if not self.ready:
            raise RuntimeError(f"replay buffer holds {len(self)} transitions; sampling starts at warmup={self.warmup}")
        idx = torch.randint(len(self), (batch_size,), generator=generator).to(self.states.device)
        return {"states": self.states[idx], "actions": self.actions[idx], "rewards": self.rewards[idx],
                "next_states": self.next_states[idx]}
