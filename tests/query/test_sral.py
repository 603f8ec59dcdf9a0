import pytest
import torch
from lightning.pytorch.loggers import Logger

from tests.helpers.ddp import RankSnapshot, ddp_trainer, load_snapshots
from zerosum.callbacks import ActiveLearning
from zerosum.datamodules import ActivePoolDataModule, SyntheticDataModule
from zerosum.modules import SRAL
from zerosum.query import SRALStrategy
from zerosum.inference import map_pool
from zerosum.query.uncertainty import entropy_score


def make_pool(num_train=120, initial=20, seed=0):
    pool = ActivePoolDataModule(SyntheticDataModule(num_train=num_train, num_test=32, batch_size=16, val_size=24),
                                initial_labeled=initial, seed=seed)
    pool.setup("fit")
    return pool


def make_sral(**kw):
    torch.manual_seed(0)
    args = dict(num_classes=4, in_channels=1, net="small_cnn", net_args={"width": 4}, selection_net="small_cnn",
                selection_net_args={"width": 4}, group_size=4, actor_args={"hidden": 16}, critic_args={"hidden": 16},
                replay_warmup=4, replay_batch_size=4)
    args.update(kw)
    return SRAL(**args)


def force_actor(module, value: float):
    """Make the actor output tanh(value) for every candidate (select all / nothing)."""
    last = module.agent.actor.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)
    module.noise.sigma.fill_(0.0)


def test_select_all_actor_returns_top_entropy_candidates():
    pool, module = make_pool(), make_sral(replay_warmup=1000)  # no DDPG update moves the actor
    force_actor(module, 10.0)
    budget = 16
    strategy = SRALStrategy(small_budget=budget, retrain_epochs=0, probe_steps=0, reward_val_size=8)
    # brute force: entropy of the selection classifier before any update
    ent, _, idx = map_pool(None, module.selection_net, pool.unlabeled_dataloader(),
                           lambda m, b: entropy_score(m(b[0])))
    expected = set(idx[torch.sort(ent, descending=True, stable=True).indices[:budget]].tolist())
    picked = strategy.select(None, module, pool, budget)
    assert set(picked.tolist()) == expected
    assert len(module.replay) == -(-budget // module.group_size)  # one transition per group walked


def test_reject_all_actor_falls_back_and_budget_is_exact():
    pool, module = make_pool(), make_sral()
    force_actor(module, -10.0)
    strategy = SRALStrategy(small_budget=7, retrain_epochs=1, max_passes=1, reward_val_size=8)
    picked = strategy.select(None, module, pool, 17)
    assert len(picked) == 17 and len(set(picked.tolist())) == 17
    assert set(picked.tolist()) <= set(pool.unlabeled_indices.tolist())
    assert strategy.last_stats["fallback"] == 17 and set(strategy.last_stats["rewards"]) == {0.0}


def test_rewards_are_accuracy_changes_and_agent_learns_after_warmup():
    pool, module = make_pool(), make_sral()
    strategy = SRALStrategy(small_budget=10, reward_val_size=24, probe_steps=2, probe_lr=0.1)
    before = {k: v.clone() for k, v in module.agent.actor.state_dict().items()}
    picked = strategy.select(None, module, pool, 30)
    assert len(set(picked.tolist())) == 30
    rewards = torch.tensor(strategy.last_stats["rewards"])
    assert (rewards != 0).any()  # accuracy moved after some probe updates
    assert torch.all((rewards * 24 / 100).round() == rewards * 24 / 100)  # multiples of 1/24 in % points
    assert len(module.replay) == strategy.last_stats["steps"] >= module.replay.warmup
    assert any(not torch.equal(v, module.agent.actor.state_dict()[k]) for k, v in before.items())


def entropy_order(module, pool):
    """Brute force: the unlabeled pool in the selection classifier's entropy order, with its features."""
    out, _, idx = map_pool(None, module.selection_net, pool.unlabeled_dataloader(),
                           lambda m, b: torch.cat([entropy_score(m(b[0]))[:, None], m.features(b[0])], 1))
    order = torch.sort(out[:, 0], descending=True, stable=True).indices
    return idx[order], out[order, 1:]


def simulate_walk(module, pool, budget, lr, steps, scope, undo, val_size):
    """Brute force of one pass of a select-all actor: fresh plain-SGD probes in eval mode on each group
    of the entropy order, each from the weights the last accepted probe left; returns the expected
    rewards, picks (fallback in ranking order), returned count, final weights and the states."""
    import copy

    from torch.nn import functional as F

    net = copy.deepcopy(module.selection_net).eval()
    n = module.group_size
    order, feats = entropy_order(module, pool)
    mean, std = feats.mean(0), feats.std(0, unbiased=False).clamp_min(1e-6)
    ds, val = pool.datamodule.train_set_eval, pool.datamodule.val_set
    vx = torch.stack([val[i][0] for i in range(val_size)])
    vy = torch.tensor([int(val[i][1]) for i in range(val_size)])
    head_feats = net.features(vx).detach()

    def correct():
        with torch.no_grad():
            logits = net.head(head_feats) if scope == "head" else net(vx)
        return (logits.argmax(1) == vy).float()

    def state(pos):
        s = torch.zeros(n, feats.shape[1])
        if len(pos):
            x = torch.stack([ds[int(i)][0] for i in order[pos]])
            f = net.features(x).detach() if scope == "all" else feats[pos]
            s[: len(pos)] = (f - mean) / std
        return s

    c, rewards, picked, returned, states = correct(), [], [], 0, []
    for start in range(0, len(order), n):
        need = budget - len(picked)
        if need <= 0:
            break
        group = list(range(start, min(start + n, len(order))))[:need]
        states.append(state(torch.tensor(list(range(start, min(start + n, len(order)))))))
        x = torch.stack([ds[int(i)][0] for i in order[group]])
        y = torch.tensor([int(ds[int(i)][1]) for i in order[group]])
        inputs, part = (net.features(x).detach(), net.head) if scope == "head" else (x, net)
        saved = copy.deepcopy(part.state_dict())
        opt = torch.optim.SGD(part.parameters(), lr=lr)  # fresh: no momentum, no decay
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(part(inputs), y).backward()
            opt.step()
        after = correct()
        rewards.append(100.0 * int((after - c).sum()) / val_size)
        if undo and rewards[-1] < 0:
            part.load_state_dict(saved)
            returned += len(group)
        else:
            picked += group
            c = after
    rest = [p for p in range(len(order)) if p not in picked][: budget - len(picked)]
    return rewards, set(order[picked + rest].tolist()), returned, net, states


@pytest.mark.parametrize("scope", ["all", "head"])
def test_rewards_are_paired_accuracy_changes_of_fresh_probes_and_states_are_refreshed(scope):
    pool, module = make_pool(), make_sral(replay_warmup=1000)
    force_actor(module, 10.0)
    transitions = []
    remember = module.remember
    module.remember = lambda s, a, r, s2: (transitions.append((s.clone(), r, s2.clone())), remember(s, a, r, s2))
    lr = {"all": 0.5, "head": 5.0}[scope]
    strategy = SRALStrategy(small_budget=12, retrain_epochs=0, probe_steps=2, probe_lr=lr, probe_scope=scope,
                            reward_val_size=24, max_passes=1)
    picked = strategy.select(None, module, pool, 12)
    rewards, expected, _, net, states = simulate_walk(make_sral(), pool, 12, lr, 2, scope, False, 24)
    assert strategy.last_stats["rewards"] == rewards and any(r != 0 for r in rewards)
    assert set(picked.tolist()) == expected
    for k, v in net.state_dict().items():  # each accepted probe's update is kept: phi_i starts the next step
        torch.testing.assert_close(module.selection_net.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    # S of each step = S' of the step before, computed after its probe (the refreshed state)
    for (s, _, s2), (s_next, _, _) in zip(transitions, transitions[1:]):
        assert torch.equal(s2, s_next)
    for (s, _, _), expected_state in zip(transitions, states):
        torch.testing.assert_close(s, expected_state, rtol=1e-4, atol=1e-4)
    se = strategy.last_stats["reward_se"]
    assert all(v >= 0 for v in se) and any(v > 0 for v in se) and len(se) == len(rewards)


@pytest.mark.parametrize("scope", ["all", "head"])
def test_zero_probe_lr_gives_exactly_zero_rewards_and_leaves_the_classifier_and_batchnorm_alone(scope):
    pool, module = make_pool(), make_sral(replay_warmup=1000)
    with torch.no_grad():  # non-trivial BatchNorm statistics: a train-mode forward would move them
        for m in module.selection_net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    force_actor(module, 10.0)
    before = {k: v.clone() for k, v in module.selection_net.state_dict().items()}
    strategy = SRALStrategy(small_budget=8, retrain_epochs=0, probe_steps=3, probe_lr=0.0, probe_scope=scope,
                            reward_val_size=24)
    strategy.select(None, module, pool, 16)
    stats = strategy.last_stats
    assert sum(stats["selected_per_step"]) == 16 and stats["fallback"] == 0
    assert set(stats["rewards"]) == {0.0} and set(stats["reward_se"]) == {0.0}
    for k, v in module.selection_net.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("mode", ["keep", "return"])
def test_negative_reward_returns_the_picks_to_the_pool_and_undoes_the_probe(mode):
    pool, module = make_pool(), make_sral(replay_warmup=1000)
    force_actor(module, 10.0)
    strategy = SRALStrategy(small_budget=20, retrain_epochs=0, probe_steps=1, probe_lr=20.0, probe_scope="head",
                            reward_val_size=24, max_passes=1, negative_reward=mode)
    picked = strategy.select(None, module, pool, 20)
    rewards, expected, returned, net, _ = simulate_walk(make_sral(), pool, 20, 20.0, 1, "head", mode == "return", 24)
    assert any(r < 0 for r in rewards)  # the planted case has groups that hurt
    assert strategy.last_stats["rewards"] == rewards
    assert set(picked.tolist()) == expected and len(picked) == 20
    assert strategy.last_stats["returned"] == returned and (returned > 0) == (mode == "return")
    torch.testing.assert_close(module.selection_net.head.weight, net.head.weight)


def test_ddpg_updates_per_transition_are_counted_and_reported():
    pool, module = make_pool(), make_sral(replay_warmup=5)
    strategy = SRALStrategy(small_budget=10, reward_val_size=24, updates_per_step=3)
    strategy.select(None, module, pool, 20)
    steps = strategy.last_stats["steps"]
    assert steps >= 5 and strategy.last_stats["ddpg_updates"] == 3 * (steps - 5 + 1) == int(module.agent.updates)
    metrics = strategy.round_metrics()
    assert metrics["sral_ddpg_updates"] == 3 * (steps - 4) and metrics["sral_steps"] == steps
    rewards = torch.tensor(strategy.last_stats["rewards"], dtype=torch.float64)
    assert metrics["sral_reward_mean"] == pytest.approx(float(rewards.mean()))
    assert metrics["sral_reward_sd"] == pytest.approx(float(rewards.std(unbiased=False)))
    walked = sum(strategy.last_stats["group_sizes"])
    assert metrics["sral_selection_rate"] == pytest.approx(sum(strategy.last_stats["selected_per_step"]) / walked)
    assert metrics["sral_critic_loss"] > 0 and "sral_reward_se" in metrics


def test_pool_cache_between_rankings_changes_nothing_but_the_time():
    runs = []
    for cache_mb in (0, 64):
        pool, module = make_pool(), make_sral()
        strategy = SRALStrategy(small_budget=7, reward_val_size=24, probe_lr=1.0, pool_cache_mb=cache_mb)
        runs.append((strategy.select(None, module, pool, 17), strategy.last_stats["rewards"],
                     module.selection_net.state_dict()))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]  # 3 chunks: 2 re-rankings from the cache
    for k, v in runs[0][2].items():
        assert torch.equal(v, runs[1][2][k]), k


def test_random_pre_rank_differs_from_entropy():
    picks = {}
    for mode in ("entropy", "random"):
        pool, module = make_pool(), make_sral()
        force_actor(module, 10.0)
        picks[mode] = set(SRALStrategy(small_budget=12, pre_rank=mode, retrain_epochs=0, probe_steps=0,
                                       reward_val_size=8).select(None, module, pool, 12).tolist())
    assert picks["entropy"] != picks["random"]


def test_bad_options_and_wrong_module():
    with pytest.raises(ValueError, match="pre_rank"):
        SRALStrategy(pre_rank="margin")
    with pytest.raises(ValueError, match="small_budget"):
        SRALStrategy(small_budget=0)
    from zerosum.modules import Classifier

    with pytest.raises(TypeError, match="SRAL"):
        SRALStrategy().select(None, Classifier(num_classes=4, in_channels=1), make_pool(), 5)


def test_missing_module_interface_is_named():
    from types import SimpleNamespace

    partial = SimpleNamespace(selector=None, group_size=4, act=None)
    with pytest.raises(TypeError, match="lacks probe, retrain, remember, agent_step, selection_state"):
        SRALStrategy().select(None, partial, make_pool(), 5)


def al_callback(tmp_path, rounds=3):
    strategy = SRALStrategy(small_budget=6, reward_val_size=16)
    return ActiveLearning(strategy, rounds=rounds, epochs_per_round=1, budget=12, output_dir=str(tmp_path / "al"))


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call: what TensorBoard would draw."""

    def __init__(self):
        super().__init__()
        self.calls = []

    name, version = "recording", 0
    experiment = None

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_agent_survives_the_callbacks_weight_reset_and_its_curves_are_logged(tmp_path):
    import lightning as L

    pool = ActivePoolDataModule(SyntheticDataModule(num_train=120, num_test=32, batch_size=16, val_size=24),
                                initial_labeled=20)
    module, cb, logger = make_sral(), al_callback(tmp_path), RecordingLogger()
    trainer = L.Trainer(max_epochs=3, callbacks=[cb], logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=pool)
    steps = cb.strategy.last_stats["steps"]
    assert pool.num_labeled == 20 + 2 * 12
    assert len(module.replay) > steps  # transitions of both queries: the reset did not wipe the agent
    # the agent's curves (against transitions seen) and the per-round numbers (against labels)
    curves = [(m, step) for m, step in logger.calls if "sral/reward_mean" in m]
    assert len(curves) >= 2 and [step for _, step in curves] == sorted(step for _, step in curves)
    assert curves[-1][1] == int(module.replay.total) and curves[-1][0]["sral/ddpg_updates"] == int(module.agent.updates)
    assert {"sral/reward_sd", "sral/reward_se", "sral/selection_rate", "sral/critic_loss"} <= set(curves[-1][0])
    rounds = [(m, step) for m, step in logger.calls if "active/sral_reward_mean" in m]
    assert [step for _, step in rounds] == [20, 32]
    assert rounds[-1][0]["active/sral_ddpg_updates_total"] == int(module.agent.updates)
    ckpt = tmp_path / "end.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert int(state["replay.size"]) == len(module.replay)


def picked_indices(trainer, module):
    return {"labeled": trainer.datamodule.labeled_indices.tolist()}


@pytest.mark.slow  # ~50 s alone on 2 shared CPU cores (two spawned processes, 3 rounds)
def test_ddp_two_processes_make_identical_selections(tmp_path):
    pool = ActivePoolDataModule(SyntheticDataModule(num_train=120, num_test=32, batch_size=4, val_size=24),
                                initial_labeled=20)
    trainer = ddp_trainer(tmp_path, callbacks=[al_callback(tmp_path), RankSnapshot(tmp_path, extra=picked_indices)],
                          max_epochs=3)
    trainer.fit(make_sral(), datamodule=pool)
    snaps = load_snapshots(tmp_path)
    # BatchNorm running statistics are per rank on CPU (no SyncBatchNorm there); everything else,
    # the agent (networks, targets, replay, noise) included, must be bitwise identical
    for k, v in snaps[0]["state"].items():
        if "running_" not in k:
            assert torch.equal(v, snaps[1]["state"][k]), k
    assert snaps[0]["extra"]["labeled"] == snaps[1]["extra"]["labeled"]
    assert len(snaps[0]["extra"]["labeled"]) == 20 + 2 * 12
    assert int(snaps[0]["state"]["replay.size"]) > 0
