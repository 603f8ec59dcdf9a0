"""Reinforcement-learning parts (DDPG actor-critic, replay buffer, exploration noise), each a small
reusable module. Used by SRAL (:mod:`zerosum.modules.sral`)."""

from zerosum.rl.actor import ACTORS, ConvActor, MLPActor, SharedActor, build_actor
from zerosum.rl.critic import CRITICS, Critic, SharedCritic, build_critic
from zerosum.rl.ddpg import DDPG
from zerosum.rl.noise import GaussianNoise, OUNoise, build_noise
from zerosum.rl.replay_buffer import ReplayBuffer

__all__ = ["ACTORS", "CRITICS", "ConvActor", "Critic", "DDPG", "GaussianNoise", "MLPActor", "OUNoise", "ReplayBuffer",
           "SharedActor", "SharedCritic", "build_actor", "build_critic", "build_noise"]
