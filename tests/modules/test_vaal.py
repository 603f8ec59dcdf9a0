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
    model = tiny_vaal(pool, lambda2=0.0)
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
    with pytest.raises(ValueError, match="image_size"):
        tiny_vaal(dm, vae_num_blocks=4)


def vaal_ranks_extra(trainer, module):
    """Per rank: the pool state and a VAAL selection on the final weights (scored sharded)."""
    pool = trainer.datamodule
    return {"labeled_round": pool.labeled_round.clone(), "vaal": VAALQuery().select(trainer, module, pool, 7),
            "global_step": trainer.global_step}


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
    # 12 labeled per rank per epoch -> 1 batch of 8; round 2 has 33 labeled -> 2 batches; 4 optimizer steps each
    assert extra[0]["global_step"] == 4 * (1 + 2)
    # the sharded, gathered VAAL selection equals the single-process one on the same weights and pool
    single = tiny_vaal(dm)
    single.load_state_dict(snaps[0]["state"])
    pool.setup("fit")
    pool.load_state_dict({"labeled_round": extra[0]["labeled_round"]})
    assert torch.equal(VAALQuery().select(None, single, pool, 7), extra[0]["vaal"])
