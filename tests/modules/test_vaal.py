import lightning as L
import pytest
import torch

from zerosum.datamodules import ActivePoolDataModule, SyntheticDataModule
from zerosum.modules import VAAL
from zerosum.query.vaal import VAALQuery

TINY = dict(net="small_cnn", net_args={"width": 8}, latent_dim=8, vae_base_width=8, vae_num_blocks=2,
            disc_hidden_dim=32, disc_num_layers=3)


def tiny_vaal(dm, **kwargs) -> VAAL:
    return VAAL(num_classes=dm.num_classes, in_channels=dm.in_channels, image_size=dm.image_size,
                **{**TINY, **kwargs})


def planted_pool(num_train=192, held_out=16):
    """Labeled = classes 0 and 1 (except ``held_out`` of them); unlabeled = classes 2 and 3 plus the
    held-out class-0/1 samples: the pools come from different distributions."""
    dm = SyntheticDataModule(num_train=num_train, num_classes=4, batch_size=16, val_size=0, noise=0.3)
    pool = ActivePoolDataModule(dm, initial_labeled=1, unlabeled_stream=True)
    pool.setup()
    targets = torch.as_tensor([dm.train_set[i][1] for i in range(len(dm.train_set))])
    first = (targets < 2).nonzero().squeeze(1)
    pool.labeled_round.fill_(-1)
    pool.labeled_round[first[held_out:]] = 0
    return pool, targets, first[:held_out]


def separation(model: VAAL, pool) -> float:
    """Mean D(mu) on the labeled minus on the unlabeled samples (eval mode, eval transforms)."""
    ds = pool.datamodule.train_set_eval
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    model.eval()
    p = model.labeled_probability(x)
    model.train()
    lab = pool.labeled_round >= 0
    return float(p[lab].mean() - p[~lab].mean())


def quiet_trainer(**kwargs) -> L.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                    limit_val_batches=0)
    return L.Trainer(**{**defaults, **kwargs})


def test_discriminator_steps_separate_planted_pools_and_query_picks_the_other_distribution_first():
    torch.manual_seed(0)
    pool, targets, held_out = planted_pool()
    model = tiny_vaal(pool, lambda2=0.0, kl_reduction="mean")  # (summed KL: the tiny posterior collapses)
    dm = pool.datamodule
    lab = dm.loader(torch.utils.data.Subset(dm.train_set, pool.labeled_indices.tolist()), train=True)
    unl = dm.loader(torch.utils.data.Subset(dm.train_set, pool.unlabeled_indices.tolist()), train=True)

    def steps(player, objective, lr, epochs):
        opt = torch.optim.Adam(player.parameters(), lr=lr)
        for _ in range(epochs):
            for (x_l, _, _), (x_u, _, _) in zip(lab, unl):
                opt.zero_grad()
                objective(x_l, x_u).backward()
                opt.step()

    steps(model.vae, model.vae_objective, 3e-3, 3)  # a latent space first (Eq. 1)
    before = separation(model, pool)
    steps(model.discriminator, model.discriminator_objective, 5e-3, 5)  # Eq. 3, the VAE frozen
    after = separation(model, pool)
    assert after > before + 0.15, (before, after)

    scores, indices = VAALQuery().score(None, model, pool)  # -D(mu): higher = label first
    planted = targets[indices] >= 2
    # AUC: a class-2/3 sample outranks a held-out class-0/1 sample (random scoring: 0.5)
    auc = (scores[planted][:, None] > scores[~planted][None, :]).float().mean()
    assert auc > 0.9, auc
    chosen = VAALQuery().select(None, model, pool, budget=16)
    assert (targets[chosen] >= 2).float().mean() >= 0.9
    assert not set(chosen.tolist()) & set(pool.labeled_indices.tolist())


def test_full_game_discriminator_separates_planted_pools_and_the_query_reports_its_auroc():
    """The real training step (T, 2 VAE, 1 D updates on fresh draws) on two clearly different
    distributions: D's labeled-vs-unlabeled AUROC at query time rises well above 0.5. (Per-element
    KL: with the official summed KL this tiny VAE's posterior collapses to the prior within these
    steps and D has nothing to separate.)"""
    torch.manual_seed(0)
    pool, targets, held_out = planted_pool()
    adam = lambda p: torch.optim.Adam(p, lr=2e-3)  # noqa: E731
    model = tiny_vaal(pool, kl_reduction="mean", vae_optimizer=adam, disc_optimizer=adam)
    query = VAALQuery()
    assert query.round_metrics() == {}
    query.select(None, model, pool, 8)
    before = query.last_auroc
    quiet_trainer(max_steps=30 * 4).fit(model, pool)  # 30 iterations of 4 updates
    query.select(None, model, pool, 8)
    assert query.round_metrics() == {"vaal_d_auroc": query.last_auroc}
    assert query.last_auroc > 0.85 and query.last_auroc > before + 0.2, (before, query.last_auroc)
    # the number is the AUROC of D(mu) on the whole pool, labeled positive (brute force over all pairs)
    ds = pool.datamodule.train_set_eval
    model.eval()
    d = model.labeled_probability(torch.stack([ds[i][0] for i in range(len(ds))]))
    lab = pool.labeled_round >= 0
    pairs = (d[lab][:, None] > d[~lab][None, :]).float() + 0.5 * (d[lab][:, None] == d[~lab][None, :]).float()
    assert abs(float(pairs.mean()) - query.last_auroc) < 1e-6


def test_fresh_batches_give_every_further_update_its_own_draw():
    dm = SyntheticDataModule(num_train=32, batch_size=12)
    seen = []

    def spy(model, name):
        original = getattr(model, name)

        def wrapped(x_l, *rest):
            other = rest[0][:, 0, 0, 0].tolist() if rest[0].dim() == 4 else None  # x_U (VAE, D) or y_L (T)
            seen.append((name, x_l[:, 0, 0, 0].tolist(), other))
            return original(x_l, *rest)
        setattr(model, name, wrapped)

    x_l = torch.arange(12.0).view(12, 1, 1, 1).expand(12, 1, 8, 8).contiguous()
    batch = {"labeled": (x_l, torch.zeros(12, dtype=torch.long), torch.arange(12)),
             "unlabeled": (x_l + 100, torch.zeros(12, dtype=torch.long), torch.arange(12))}
    for fresh in (True, False):
        torch.manual_seed(0)
        model = tiny_vaal(dm, num_vae_steps=2, num_adv_steps=2, fresh_batches=fresh)
        assert model.draws_per_step == (3 if fresh else 1)
        for name in ("task_objective", "vae_objective", "discriminator_objective"):
            spy(model, name)
        seen.clear()
        model.training_step(batch, 0)
        draw = [list(range(4 * j, 4 * j + 4)) for j in range(3)] if fresh else [list(range(12))] * 3
        # solver.py: T and the first VAE step share a draw, each further VAE step and D step a new one
        # (the first D step reuses the last VAE draw)
        expected = [("task_objective", draw[0]), ("vae_objective", draw[0]), ("vae_objective", draw[1]),
                    ("discriminator_objective", draw[1]), ("discriminator_objective", draw[2])]
        assert [(name, lab) for name, lab, _ in seen] == expected
        assert all(unl == [v + 100 for v in lab] for name, lab, unl in seen if name != "task_objective")


def test_task_scheduler_decays_the_task_rate_per_task_update_only():
    from torch.optim.lr_scheduler import StepLR

    torch.manual_seed(0)
    dm = SyntheticDataModule(num_train=64, batch_size=16, val_size=0)
    pool = ActivePoolDataModule(dm, initial_labeled=32, unlabeled_stream=True)
    model = tiny_vaal(dm, task_scheduler=lambda opt: StepLR(opt, step_size=2, gamma=0.1))  # official: /10 per quarter
    trainer = quiet_trainer(max_steps=5 * 4)  # 5 iterations of 1 + 2 + 1 updates
    trainer.fit(model, pool)
    task, vae, disc = trainer.optimizers
    assert task.param_groups[0]["lr"] == pytest.approx(0.01 * 0.1 ** 2)  # stepped at task updates 2 and 4
    assert vae.param_groups[0]["lr"] == disc.param_groups[0]["lr"] == 5e-4
    assert isinstance(task.optimizer if hasattr(task, "optimizer") else task, torch.optim.SGD)  # official default


def test_one_iteration_updates_each_player_in_order():
    torch.manual_seed(0)
    dm = SyntheticDataModule(num_train=64, batch_size=16, val_size=0)
    pool = ActivePoolDataModule(dm, initial_labeled=16, unlabeled_stream=True)
    model = tiny_vaal(dm, num_vae_steps=3, num_adv_steps=2)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = quiet_trainer(max_steps=6)  # global_step counts optimizer steps: 1 + 3 + 2 per iteration
    trainer.fit(model, pool)
    assert trainer.global_step == 6 and trainer.fit_loop.epoch_loop.batch_progress.total.completed == 1
    for player in ("task_model", "vae", "discriminator"):
        moved = [k for k, v in model.state_dict().items() if k.startswith(player + ".") and v.is_floating_point()
                 and not torch.equal(v, initial[k])]
        assert moved, f"{player} did not move"


def test_vae_step_leaves_discriminator_and_task_model_untouched():
    torch.manual_seed(0)
    dm = SyntheticDataModule(num_train=32, batch_size=8)
    model = tiny_vaal(dm)
    opt = torch.optim.SGD(model.vae.parameters(), lr=0.1)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("vae.")}
    x_l, x_u = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    model.vae_objective(x_l, x_u).backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())  # Eq. 2 flows through D...
    opt.step()  # ...but only the VAE's optimizer steps
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
    model.zero_grad()
    model.discriminator_objective(x_l, x_u).backward()  # Eq. 3: the VAE is frozen
    assert all(p.grad is None for p in model.vae.parameters())


def test_plain_batches_are_refused_with_a_hint():
    dm = SyntheticDataModule(num_train=32, batch_size=8)
    model = tiny_vaal(dm)
    with pytest.raises(ValueError, match="unlabeled_stream=True"):
        model.split_batch((torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)))


def test_invalid_options_are_refused():
    dm = SyntheticDataModule()
    with pytest.raises(ValueError, match="num_vae_steps"):
        tiny_vaal(dm, num_vae_steps=0)
    with pytest.raises(ValueError, match="kl_reduction: .*allowed: sum, mean"):
        tiny_vaal(dm, kl_reduction="max")
    with pytest.raises(ValueError, match="image_size"):
        tiny_vaal(dm, vae_num_blocks=4)


def vaal_ranks_extra(trainer, module):
    """Per rank: the pool state and a VAAL selection on the final weights (scored sharded)."""
    pool = trainer.datamodule
    query = VAALQuery()
    return {"labeled_round": pool.labeled_round.clone(), "vaal": query.select(trainer, module, pool, 7),
            "global_step": trainer.global_step, "auroc": query.last_auroc,
            "batches": trainer.fit_loop.epoch_loop.batch_progress.total.completed}


@pytest.mark.slow
def test_ddp_two_rounds_keep_ranks_identical(tmp_path):
    from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
    from zerosum.callbacks import ActiveLearning

    L.seed_everything(0)
    dm = SyntheticDataModule(num_train=101, batch_size=8, val_size=0.1)  # 91 in the pool: uneven shards
    pool = ActivePoolDataModule(dm, initial_labeled=24, unlabeled_stream=True)
    model = tiny_vaal(dm)
    al = ActiveLearning(VAALQuery(), rounds=2, epochs_per_round=1, budget=9, output_dir=str(tmp_path / "o"))
    trainer = ddp_trainer(tmp_path, callbacks=[al, RankSnapshot(tmp_path, extra=vaal_ranks_extra)], max_epochs=2)
    trainer.fit(model, pool)  # no find_unused_parameters: each player syncs its own gradients
    snaps = assert_ranks_in_sync(tmp_path)  # every weight and BatchNorm buffer equal on both ranks
    extra = [s["extra"] for s in snaps]
    assert torch.equal(extra[0]["labeled_round"], extra[1]["labeled_round"])
    assert int((extra[0]["labeled_round"] == 1).sum()) == 9
    assert torch.equal(extra[0]["vaal"], extra[1]["vaal"])
    assert extra[0]["auroc"] == extra[1]["auroc"] and 0 <= extra[0]["auroc"] <= 1  # the sharded AUROC agrees
    # 4 optimizer steps (T, 2 VAE, 1 D) per training batch, on every rank
    assert extra[0]["global_step"] == 4 * extra[0]["batches"] == extra[1]["global_step"] and extra[0]["batches"] >= 3
    # the sharded, gathered VAAL selection equals the single-process one on the same weights and pool
    single = tiny_vaal(dm)
    single.load_state_dict(snaps[0]["state"])
    pool.setup("fit")
    pool.load_state_dict({"labeled_round": extra[0]["labeled_round"]})
    assert torch.equal(VAALQuery().select(None, single, pool, 7), extra[0]["vaal"])
