import pytest
import torch

from zerosum.modules import SRAL


def make(**kw):
    torch.manual_seed(0)
    args = dict(num_classes=4, in_channels=1, net="small_cnn", net_args={"width": 4}, selection_net="small_cnn",
                selection_net_args={"width": 4}, group_size=3, actor_args={"hidden": 8}, critic_args={"hidden": 8},
                replay_warmup=4, replay_batch_size=4)
    args.update(kw)
    return SRAL(**args)


def fill(module, k=6):
    g = torch.Generator().manual_seed(0)
    d = module.selector.feature_dim
    for i in range(k):
        module.replay.add(torch.randn(3, d, generator=g), torch.rand(3, generator=g), float(i), torch.randn(3, d, generator=g))


def test_agent_state_is_in_state_dict_and_round_trips():
    m = fill_and_step = make()
    fill(m)
    assert m.agent_step(torch.Generator().manual_seed(0)) is not None
    state = m.state_dict()
    for key in ("agent.actor_target.net.0.weight", "agent.critic.net.0.weight", "replay.states", "replay.size", "noise.sigma"):
        assert key in state
    other = make()
    assert not torch.equal(other.agent.actor.net[0].weight, fill_and_step.agent.actor.net[0].weight)
    other.load_state_dict(state)
    s = torch.randn(2, 3, m.selector.feature_dim)
    assert torch.equal(other.agent.actor(s), m.agent.actor(s))
    assert len(other.replay) == 6 and torch.equal(other.replay.rewards, m.replay.rewards)


def test_no_agent_update_before_warmup():
    m = make(replay_warmup=10)
    fill(m, 9)
    assert m.agent_step() is None
    fill(m, 1)
    assert m.agent_step() is not None


class _Strategy:
    def setup_optimizers(self, trainer):
        trainer.optimizers = trainer.lightning_module.configure_optimizers()


@pytest.mark.parametrize("keep_selector", [False, True])
def test_callback_reset_restarts_classifiers_but_keeps_the_agent_and_its_optimizers(keep_selector):
    from types import SimpleNamespace

    from torch.nn import functional as F

    from zerosum.callbacks import ActiveLearning
    from zerosum.query import RandomStrategy

    m = make(keep_selector=keep_selector)
    init = {k: v.clone() for k, v in m.state_dict().items()}
    trainer = SimpleNamespace(lightning_module=m, strategy=_Strategy(), optimizers=m.configure_optimizers())
    opt_net, opt_sel, opt_a, opt_c = trainer.optimizers
    # a classifier step (SGD momentum state) and an agent step (Adam state)
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 4, (8,))
    F.cross_entropy(m.net(x), y).add(F.cross_entropy(m.selection_net(x), y)).backward()
    opt_net.step(), opt_sel.step()
    fill(m)
    m.agent.update(m.replay.sample(4, torch.Generator().manual_seed(0)), opt_a, opt_c)
    assert opt_net.state and opt_sel.state
    kept_prefixes = ("agent.", "replay.", "noise.") + (("selection_net.",) if keep_selector else ())
    kept = {k: v.clone() for k, v in m.state_dict().items() if k.startswith(kept_prefixes)}
    exp_sel = opt_sel.state[m.selection_net.head.weight]["momentum_buffer"].clone()
    actor_w = m.agent.actor.net[0].weight
    assert not torch.equal(kept["agent.actor.net.0.weight"], init["agent.actor.net.0.weight"])
    exp_avg_a = opt_a.state[actor_w]["exp_avg"].clone()
    exp_avg_c = opt_c.state[m.agent.critic.net[0].weight]["exp_avg"].clone()

    al = ActiveLearning(RandomStrategy(), rounds=2, epochs_per_round=1, budget=1)
    al._init_state = init  # (holds the agent's initial entries too: the reset must skip them)
    al._reset(trainer, m)

    state = m.state_dict()
    reset = ("net.",) if keep_selector else ("net.", "selection_net.")
    for k, v in init.items():
        if k.startswith(reset):
            assert torch.equal(state[k], v), k  # classifiers back to their initial weights
    for k, v in kept.items():
        assert torch.equal(state[k], v), k  # agent, replay, noise (and a kept selector) untouched
    assert len(m.replay) == 6
    new_net, new_sel, new_a, new_c = trainer.optimizers
    assert new_net is not opt_net and not new_net.state  # a fresh optimiser for the final learner
    if keep_selector:  # the kept selection classifier keeps its optimiser state
        assert torch.equal(new_sel.state[m.selection_net.head.weight]["momentum_buffer"], exp_sel)
    else:
        assert not new_sel.state
    assert new_a is not opt_a and new_c is not opt_c
    assert torch.equal(new_a.state[actor_w]["exp_avg"], exp_avg_a)  # agent optimiser state carried over
    assert torch.equal(new_c.state[m.agent.critic.net[0].weight]["exp_avg"], exp_avg_c)
    assert new_a.param_groups[0]["params"][0] is actor_w


def test_agent_is_outside_ddp_and_selector_choice():
    m = make()
    ignored = set(m._ddp_params_and_buffers_to_ignore)
    assert "agent.critic_target.net.0.weight" in ignored and "replay.states" in ignored
    assert not any(k.startswith(("net.", "selection_net.")) for k in ignored)
    shared = make(selection_net=None)
    assert shared.selector is shared.net and shared.replay.states.shape[-1] == shared.net.feature_dim
    with pytest.raises(ValueError, match="unknown actor"):
        make(actor="lstm")
    with pytest.raises(ValueError, match="group_size"):
        make(group_size=0)


@pytest.mark.parametrize("actor", ["mlp", "conv"])
def test_training_step_fits_both_classifiers(actor):
    import lightning as L

    from zerosum.datamodules import SyntheticDataModule

    m = make(actor=actor)
    dm = SyntheticDataModule(num_train=64, batch_size=16)
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    trainer.fit(m, datamodule=dm)
    after = m.state_dict()
    assert not torch.equal(before["net.head.weight"], after["net.head.weight"])
    assert not torch.equal(before["selection_net.head.weight"], after["selection_net.head.weight"])
    assert torch.equal(before["agent.actor.net.0.weight" if actor == "mlp" else "agent.actor.fc.0.weight"],
                       after["agent.actor.net.0.weight" if actor == "mlp" else "agent.actor.fc.0.weight"])


def test_agent_learns_to_select_rewarding_candidates_in_a_planted_environment():
    """SRAL's own agent interface (act, remember, agent_step: the module's players and optimisers) in a
    planted environment: a candidate whose first feature is +1 is worth +1 when selected, the others -1.
    The selection rate of the rewarding candidates rises above the others'."""
    adam = lambda p: torch.optim.Adam(p, lr=3e-3)  # noqa: E731
    m = make(group_size=4, actor="shared", critic="shared", actor_args={"hidden": 32}, critic_args={"hidden": 32},
             actor_optimizer=adam, critic_optimizer=adam, replay_warmup=32, replay_batch_size=64,
             noise_args={"sigma": 0.5, "sigma_min": 0.5, "decay": 1.0})
    d, g = m.selector.feature_dim, torch.Generator().manual_seed(0)

    def group():
        good = torch.rand(4, generator=g) < 0.5
        s = torch.randn(4, d, generator=g)
        s[:, 0] = good.float() * 2 - 1
        return s, good

    def rates(steps):  # (selection rate of rewarding, of other candidates) over the exploring actions
        good = torch.cat([x for x, _ in steps])
        sel = torch.cat([y for _, y in steps])
        return float(sel[good].float().mean()), float(sel[~good].float().mean())

    s, good = group()
    history = []
    for _ in range(200):
        a = m.act(s, g)
        sel = a >= 0
        reward = float((good[sel].float() * 2 - 1).sum())
        s2, good2 = group()
        m.remember(s, a, reward, s2)
        for _ in range(2):  # updates_per_step
            m.agent_step(g)
        history.append((good, sel))
        s, good = s2, good2
    early, late = rates(history[:40]), rates(history[-50:])
    assert int(m.agent.updates) == 2 * (200 - 32 + 1)
    assert abs(early[0] - early[1]) < 0.2, early  # nothing learned yet
    assert late[0] > 0.8 and late[1] < 0.2, late  # rewarding candidates are selected, the others not
