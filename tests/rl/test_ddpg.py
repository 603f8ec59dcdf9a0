import copy

import pytest
import torch

from zerosum.rl import DDPG, Critic, GaussianNoise, ReplayBuffer, build_actor, build_critic

N, D = 4, 6


def make_agent(actor="mlp", hidden=64, tau=0.01, gamma=0.99, seed=0):
    torch.manual_seed(seed)
    return DDPG(build_actor(actor, N, D, hidden=hidden), Critic(N, D, hidden=hidden), gamma=gamma, tau=tau)


def filled_buffer(size=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    buf = ReplayBuffer(size, (N, D), N, warmup=64)
    for _ in range(size):
        s, s2 = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
        a = torch.rand(N, generator=g) * 2 - 1
        buf.add(s, a, float((a * s[:, 0]).sum()), s2)  # a learnable reward
    return buf


def test_shared_actor_and_critic_are_permutation_equivariant_and_invariant():
    torch.manual_seed(0)
    actor, critic = build_actor("shared", N, D, hidden=16), build_critic("shared", N, D, hidden=16)
    s, perm = torch.randn(3, N, D), torch.randperm(N)
    a = actor(s)
    torch.testing.assert_close(actor(s[:, perm]), a[:, perm])  # each candidate's action follows it
    torch.testing.assert_close(critic(s[:, perm], a[:, perm]), critic(s, a))  # the group's value does not move
    with pytest.raises(ValueError, match="critic: unknown critic 'gru'; allowed: mlp, shared"):
        build_critic("gru", N, D)


@pytest.mark.parametrize("actor", ["mlp", "conv", "shared"])
def test_actions_in_open_interval_and_shapes(actor):
    agent = make_agent(actor)
    a = agent.actor(torch.randn(5, N, D) * 100)
    assert a.shape == (5, N) and a.abs().max() <= 1
    assert agent.critic(torch.randn(5, N, D), a).shape == (5,)


def test_critic_td_error_falls_on_fixed_buffer():
    agent = make_agent(gamma=0.5)
    buf = filled_buffer()
    opt = torch.optim.Adam(agent.critic.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    fixed = buf.sample(256, g)
    before = agent.critic_loss(fixed).item()
    for _ in range(300):
        loss = agent.critic_loss(buf.sample(64, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        agent.soft_update()
    after = agent.critic_loss(fixed).item()
    assert after < 0.3 * before, (before, after)


def test_soft_update_moves_targets_by_exactly_lambda():
    agent = make_agent(tau=0.01)
    with torch.no_grad():
        for p in list(agent.actor.parameters()) + list(agent.critic.parameters()):
            p.add_(torch.randn_like(p))
    old = copy.deepcopy(agent)
    agent.soft_update()
    for net, tgt, old_tgt in ((agent.actor, agent.actor_target, old.actor_target),
                              (agent.critic, agent.critic_target, old.critic_target)):
        for p, t, t0 in zip(net.parameters(), tgt.parameters(), old_tgt.parameters()):
            assert not torch.equal(t, t0)
            torch.testing.assert_close(t - t0, 0.01 * (p - t0), rtol=1e-5, atol=1e-7)


def test_actor_update_leaves_critic_untouched_and_raises_q():
    agent = make_agent()
    buf = filled_buffer()
    critic_before = copy.deepcopy(agent.critic.state_dict())
    opt_a = torch.optim.Adam(agent.actor.parameters(), lr=1e-3)
    batch = buf.sample(128, torch.Generator().manual_seed(0))
    q0 = -agent.actor_loss(batch).item()
    for _ in range(50):
        loss = agent.actor_loss(batch)
        opt_a.zero_grad()
        loss.backward()
        opt_a.step()
    assert -agent.actor_loss(batch).item() > q0
    for k, v in agent.critic.state_dict().items():
        assert torch.equal(v, critic_before[k])


class PlantedEnv:
    """Groups of N candidates; a fraction carry a planted feature (dim 0 = +1, else -1). Each selected
    planted sample earns +1, each other selected sample -1 (reward = their sum, 0 if none)."""

    def __init__(self, seed=0, p=0.3):
        self.g, self.p = torch.Generator().manual_seed(seed), p

    def group(self):
        planted = torch.rand(N, generator=self.g) < self.p
        s = torch.randn(N, D, generator=self.g) * 0.5
        s[:, 0] = planted.float() * 2 - 1
        return s, planted

    @staticmethod
    def reward(planted, selected):
        return float((planted[selected].float() * 2 - 1).sum())


@pytest.mark.parametrize("kind, steps, lr", [pytest.param("mlp", 2000, 1e-3, marks=pytest.mark.slow), ("shared", 500, 1e-3)])
def test_actor_learns_to_select_planted_samples(kind, steps, lr):
    torch.manual_seed(0)
    agent = DDPG(build_actor(kind, N, D, hidden=64), build_critic(kind, N, D, hidden=64), gamma=0.0, tau=0.05)
    buf = ReplayBuffer(3000, (N, D), N, warmup=128)
    noise = GaussianNoise(N, sigma=1.0, sigma_min=1.0, decay=1.0)
    opt_a = torch.optim.Adam(agent.actor.parameters(), lr=lr)
    opt_c = torch.optim.Adam(agent.critic.parameters(), lr=lr)
    env, g = PlantedEnv(0), torch.Generator().manual_seed(0)
    s, planted = env.group()
    for _ in range(steps):
        a = noise(agent.act(s), g)
        r = env.reward(planted, a >= 0)
        s2, planted2 = env.group()
        buf.add(s, a, r, s2)
        if buf.ready:
            agent.update(buf.sample(64, g), opt_a, opt_c)
        s, planted = s2, planted2
    test = PlantedEnv(123)
    hits = picks = total_planted = 0
    for _ in range(300):
        s, planted = test.group()
        sel = agent.act(s) >= 0
        hits += int((sel & planted).sum())
        picks += int(sel.sum())
        total_planted += int(planted.sum())
    precision, recall = hits / max(picks, 1), hits / total_planted
    assert precision > 0.8 and recall > 0.2, (precision, recall)  # chance precision is 0.3
