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


def test_remembered_agent_survives_reset_and_goes_into_checkpoints():
    m = make()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    fill(m)
    m.agent_step()
    trained = m.state_dict()["agent.actor.net.0.weight"].clone()
    m.remember_agent()
    m.load_state_dict(init)  # what ActiveLearning(reinit=True) does after a query
    ckpt = {"state_dict": m.state_dict()}
    m.on_save_checkpoint(ckpt)
    assert torch.equal(ckpt["state_dict"]["agent.actor.net.0.weight"], trained)
    assert int(ckpt["state_dict"]["replay.size"]) == 6
    m.restore_agent()
    assert torch.equal(m.agent.actor.net[0].weight, trained) and len(m.replay) == 6


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
