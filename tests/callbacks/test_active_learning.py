"""The ActiveLearning callback: a whole experiment in one fit, rounds in steps or epochs, reinit,
best-on-validation weights, stopping, outputs, settings, resume (epoch ends and mid-round), DDP."""

import csv
import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from tests.helpers.active_learning import (CrashAt, CrashAtStep, CrashingStrategy, KeepSideModule, MetricStrategy,
                                          TinyModule, ddp_selection_extra, synthetic_pool)
from tests.helpers.ddp import RankSnapshot, ddp_trainer, load_snapshots
from zerosum.callbacks import ActiveLearning
from zerosum.callbacks.active_outputs import find_random_baselines
from zerosum.modules import Classifier
from zerosum.query import BALDStrategy, CoresetStrategy, EntropyStrategy, RandomStrategy

QUIET = dict(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def _fit(tmp_path, strategy=None, rounds=3, epochs=2, steps=None, budget=8, callbacks=(), ckpt_path=None, logger=False,
         module=None, pool=None, ckpt=None, out=None, **kw):
    L.seed_everything(0)
    pool, module = (pool() if pool else synthetic_pool()), (module() if module else TinyModule())
    length = {"steps_per_round": steps} if steps else {"epochs_per_round": epochs}
    al = ActiveLearning(strategy or EntropyStrategy(), rounds=rounds, budget=budget,
                        output_dir=str(out or tmp_path / "out"), **length, **kw)
    ckpt = ckpt or ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=1)
    trainer = L.Trainer(callbacks=[al, *callbacks, ckpt], logger=logger, default_root_dir=tmp_path, **QUIET)
    trainer.fit(module, pool, ckpt_path=ckpt_path)
    return trainer, module, pool, al


def _rows(out):
    """rounds.csv without its timing column."""
    return [{k: v for k, v in r.items() if k != "query_seconds"} for r in csv.DictReader(open(out / "rounds.csv"))]


class Probe(L.Callback):
    """Records, per epoch, the pool indices trained on; at epoch starts, weights and optimizer state."""

    def __init__(self):
        self.seen, self.starts = {}, {}

    def on_train_epoch_start(self, trainer, module):
        self.starts[trainer.current_epoch] = (
            {k: v.clone() for k, v in module.state_dict().items()}, len(trainer.optimizers[0].state),
            trainer.datamodule.labeled_indices.clone())

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen.setdefault(trainer.current_epoch, []).extend(batch[2].tolist())


def test_whole_experiment_outputs_and_reinit(tmp_path):
    probe = Probe()
    trainer, module, pool, al = _fit(tmp_path, callbacks=[probe], logger=TensorBoardLogger(tmp_path, name="tb"))
    assert trainer.current_epoch == 6  # rounds x epochs_per_round, set by the callback
    # labels: 10 initial + 2 queries x 8, each query from the unlabeled pool, recorded per round
    assert pool.num_labeled == 26
    assert [int((pool.labeled_round == r).sum()) for r in range(3)] == [10, 8, 8]
    rows = list(csv.DictReader(open(tmp_path / "out" / "rounds.csv")))
    assert [(int(r["round"]), int(r["labeled"]), int(r["queried"])) for r in rows] == [(0, 10, 8), (1, 18, 8),
                                                                                       (2, 26, 0)]
    assert all(0 <= float(r["test_acc"]) <= 1 for r in rows) and {r["strategy"] for r in rows} == {"EntropyStrategy"}
    record = json.load(open(tmp_path / "out" / "labeled.json"))
    assert record["indices"] == pool.labeled_indices.tolist()
    assert record["rounds"] == pool.labeled_round[pool.labeled_indices].tolist()
    assert record["settings"]["strategy"]["class"] == "zerosum.query.EntropyStrategy"
    settings = record["settings"]
    assert (settings["budget"], settings["epochs_per_round"], record["dataset"]) == (8, 2, "Synthetic")
    assert (tmp_path / "out" / "learning_curve.png").stat().st_size > 1000
    # an epoch is one pass over the labeled set in full batches (16): every label is used every epoch
    for epoch, ids in probe.seen.items():
        labeled_now = set(probe.starts[epoch][2].tolist())
        assert set(ids) == labeled_now and len(ids) == 16 * -(-len(labeled_now) // 16)
    assert len(probe.starts[2][2]) == 18 and len(probe.starts[4][2]) == 26
    # reinit: each round starts from the initial weights with empty optimizer state
    init = probe.starts[0][0]
    for epoch in (2, 4):
        weights, opt_state, _ = probe.starts[epoch]
        assert opt_state == 0 and all(torch.equal(weights[k], init[k]) for k in init)
    assert probe.starts[1][1] > 0  # (mid-round the optimizer has state)
    # TensorBoard scalars against the number of labels
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(trainer.logger.log_dir)
    acc.Reload()
    assert [e.step for e in acc.Scalars("active/test_acc")] == [10, 18, 26]


def test_rounds_in_steps_cycle_the_labeled_set_and_report_round_metrics(tmp_path):
    """steps_per_round: one epoch per round, exactly that many batches whatever the labeled count
    (10 labels, batch 16: every batch repeats labels); the strategy's round_metrics reach rounds.csv
    and TensorBoard."""
    probe = Probe()
    trainer, _, pool, al = _fit(tmp_path, strategy=MetricStrategy(), steps=7, callbacks=[probe],
                                logger=TensorBoardLogger(tmp_path, name="tb"))
    assert trainer.current_epoch == 3 and sorted(probe.seen) == [0, 1, 2]
    for epoch, ids in probe.seen.items():
        labeled_now = probe.starts[epoch][2].tolist()
        assert len(ids) == 7 * 16 and set(ids) == set(labeled_now)
        counts = torch.bincount(torch.tensor(ids), minlength=pool.num_train)[labeled_now]
        assert counts.max() - counts.min() <= 1  # cycling without replacement inside each pass
    rows = list(csv.DictReader(open(tmp_path / "out" / "rounds.csv")))
    assert [int(r["train_steps"]) for r in rows] == [7, 7, 7]
    sums = al.strategy.sums
    assert [r["picked_sum"] for r in rows[:2]] == [str(float(v)) for v in sums] and rows[2]["picked_sum"] == ""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(trainer.logger.log_dir)
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("active/picked_sum")] == [(10, sums[0]), (18, sums[1])]


def test_no_reinit_keeps_training(tmp_path):
    probe = Probe()
    _fit(tmp_path, callbacks=[probe], reinit=False, rounds=2)
    weights, opt_state, _ = probe.starts[2]  # the second round continues from the first
    assert opt_state > 0 and not torch.equal(weights["head.weight"], probe.starts[0][0]["head.weight"])


class SideProbe(L.Callback):
    """Weights, optimizers and the side optimizer's state at epoch starts and after round 0's batches."""

    def __init__(self):
        self.starts = {}

    def _snap(self, trainer, module):
        opts = trainer.optimizers
        return ({k: v.clone() for k, v in module.state_dict().items()}, [(o, len(o.state)) for o in opts],
                {k: v.clone() for k, v in opts[1].state[module.side.weight].items()} if opts[1].state else {})

    def on_train_epoch_start(self, trainer, module):
        self.starts[trainer.current_epoch] = self._snap(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1:  # the last one is the state just before round 0's reset
            self.end_of_round_0 = self._snap(trainer, module)


def test_keep_across_rounds_keeps_a_child_and_its_optimizer_state(tmp_path):
    probe = SideProbe()
    _, module, pool, _ = _fit(tmp_path, callbacks=[probe], rounds=2, module=KeepSideModule)
    assert pool.num_labeled == 18
    init, _, init_side_opt = probe.starts[0]
    before, old_opts, side_opt_state = probe.end_of_round_0
    after, new_opts, side_opt_after = probe.starts[2]  # round 1 starts after the reset
    # the other children are back to their initial weights, with a fresh optimizer
    for k in init:
        if not k.startswith("side."):
            assert torch.equal(after[k], init[k]) and not torch.equal(before[k], init[k]), k
    assert new_opts[0][0] is not old_opts[0][0] and new_opts[0][1] == 0 and old_opts[0][1] > 0
    # the kept child is untouched, and its (rebuilt) optimizer has the old state
    for k in ("side.weight", "side.bias", "side.steps"):
        assert torch.equal(after[k], before[k]) and not torch.equal(after[k], init[k]), k
    assert new_opts[1][0] is not old_opts[1][0] and new_opts[1][1] == old_opts[1][1] == 2 and not init_side_opt
    assert side_opt_after.keys() == side_opt_state.keys() == {"step", "exp_avg", "exp_avg_sq"}
    assert all(torch.equal(side_opt_after[k], side_opt_state[k]) for k in side_opt_state)
    # and training goes on from there
    assert int(module.side.steps) > int(after["side.steps"])
    with pytest.raises(ValueError, match="keep_across_rounds names"):
        ActiveLearning._kept(type("Typo", (KeepSideModule,), {"keep_across_rounds": ("sied",)})())


class Sabotage(L.Callback):
    """From step ``after`` of every round on, the head is overwritten with noise (a run that ends badly)."""

    def __init__(self, after):
        self.after = after

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx + 1 >= self.after:
            with torch.no_grad():
                module.head.weight.copy_(torch.randn_like(module.head.weight) * 50)
                module.body[1].weight.add_(1.0)


def test_best_on_validation_restores_the_best_weights_of_the_round(tmp_path):
    """The last 4 of 12 steps ruin the model; "best_val" evaluates (and queries with) the weights of
    the best validation check, which lies before the sabotage; best_val_networks restricts the restore."""
    kw = dict(steps=12, rounds=2, callbacks=[Sabotage(after=9)], module=lambda: TinyModule(lr=0.1),
              pool=lambda: synthetic_pool(num_train=200, initial=40))
    _, _, _, last = _fit(tmp_path / "last", **kw)
    _, module, _, best = _fit(tmp_path / "best", select_weights="best_val", val_every_n_steps=2, **kw)
    for r in range(2):
        row = best.history[r]
        assert row["best_val_step"] in (2, 4, 6, 8) and row["best_val_acc"] > 0.6
        assert row["test_acc"] > 0.6 > last.history[r]["test_acc"]
    assert best.history[0]["test_acc"] > last.history[0]["test_acc"] + 0.2
    # only "head" restored: the sabotaged body stays, and so does the damage
    _, _, _, head_only = _fit(tmp_path / "head", select_weights="best_val", val_every_n_steps=2,
                              best_val_networks=["head"], **kw)
    assert head_only.history[0]["test_acc"] < best.history[0]["test_acc"] - 0.2
    with pytest.raises(ValueError, match="best_val_networks: .*'heda'.*allowed"):
        _fit(tmp_path / "typo", select_weights="best_val", best_val_networks=["heda"], **kw)


def test_stopping_criteria(tmp_path):
    # max_labels: the last query is cut to fit, then the run stops
    _, _, pool, al = _fit(tmp_path / "max", rounds=5, steps=2, max_labels=21)
    assert [h["labeled"] for h in al.history] == [10, 18, 21] and pool.num_labeled == 21
    assert al.history[-1]["stopped"] == "max_labels 21 reached" and al.history[-1]["queried"] == 0
    # a model that never learns (lr 0) plateaus: stop after `patience` rounds without gain
    _, _, pool, al = _fit(tmp_path / "flat", rounds=6, steps=2, plateau_patience=2, module=lambda: TinyModule(lr=0.0))
    assert len(al.history) == 3 and "plateau" in al.history[-1]["stopped"] and pool.num_labeled == 26
    # mean uncertainty below a threshold: the picks of that query are not labeled
    _, _, pool, al = _fit(tmp_path / "score", rounds=4, steps=2, stop_below_score=10.0)
    assert len(al.history) == 1 and pool.num_labeled == 10 and al.history[0]["score_mean"] < 10.0
    json_record = json.load(open(tmp_path / "score" / "out" / "labeled.json"))
    assert json_record["stopped"].startswith("mean score")
    with pytest.raises(ValueError, match="stop_below_score: RandomStrategy reports no score_mean"):
        _fit(tmp_path / "rnd", rounds=2, steps=2, strategy=RandomStrategy(), stop_below_score=0.1)


def _classifier():  # with validation, batch norm and dropout: resume must replay the RNG too
    return Classifier(num_classes=4, in_channels=1, net="small_cnn", net_args={"width": 4, "dropout": 0.3})


@pytest.mark.parametrize("crash", ["mid_round", "after_query", "mid_query", "mid_epoch"])
def test_resume_equals_uninterrupted_run(tmp_path, crash):
    """Kills at four points; the resumed run ends with the uninterrupted run's labels, rows and weights.
    Rounds of 6 steps (one epoch each) over augmented data with dropout; "mid_epoch" resumes from a
    checkpoint written inside a round (every 5 training steps), the others from epoch ends."""
    kw = dict(steps=6, module=_classifier, pool=lambda: synthetic_pool(augment=True))
    every = lambda d: ModelCheckpoint(dirpath=d, save_last=True, save_top_k=-1, every_n_train_steps=5)  # noqa: E731
    _, ref_module, ref_pool, ref_al = _fit(tmp_path / "ref", **kw)
    ckpt = None
    if crash == "mid_round":  # dies inside round 1 (after round 0's epoch-end checkpoint)
        strategy, callbacks, resume_epoch = EntropyStrategy(), [CrashAtStep(epoch=1, step=3)], 1
    elif crash == "after_query":  # round 1 ends at epoch 1: crash after its query, before its checkpoint
        strategy, callbacks, resume_epoch = EntropyStrategy(), [CrashAt(1)], 1
    elif crash == "mid_query":  # the second query dies having half-labeled the pool
        strategy, callbacks, resume_epoch = CrashingStrategy(EntropyStrategy(), crash_on=2), [], 1
    else:  # checkpoints every 5 optimizer steps (one per batch): the last after step 4 of round 1; dies at step 5
        strategy, callbacks, resume_epoch = EntropyStrategy(), [CrashAtStep(epoch=1, step=5)], 1
        ckpt = every(tmp_path / "run" / "ckpt")
    with pytest.raises(RuntimeError, match="planned crash|killed mid-query"):
        _fit(tmp_path / "run", strategy=strategy, callbacks=callbacks, ckpt=ckpt, **kw)
    assert (tmp_path / "run" / "ckpt" / "last.ckpt").exists()
    probe = Probe()
    _, module, pool, al = _fit(tmp_path / "run", ckpt_path="last", callbacks=[probe], **kw)
    if crash == "mid_epoch":  # resumed inside epoch 1: its remaining 2 batches only
        assert min(probe.starts) == 2 and len(probe.seen[1]) == 2 * 16
    else:
        assert min(probe.starts) == resume_epoch  # really resumed from the last epoch-end checkpoint
    assert torch.equal(pool.labeled_round, ref_pool.labeled_round)  # nothing lost, nothing twice
    assert [h["labeled"] for h in al.history] == [10, 18, 26]
    assert _rows(tmp_path / "run" / "out") == _rows(tmp_path / "ref" / "out")
    for k, v in ref_module.state_dict().items():
        assert torch.equal(module.state_dict()[k], v), k


def test_resume_refuses_a_changed_experiment(tmp_path):
    _fit(tmp_path, rounds=2, steps=3, strategy=BALDStrategy(samples=4, dropout=0.5))
    with pytest.raises(ValueError) as err:
        _fit(tmp_path, rounds=3, steps=3, budget=7, strategy=BALDStrategy(samples=6, dropout=0.5), ckpt_path="last")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("ckpt_path: the checkpoint's active-learning experiment differs")
    for change in ("budget 8 -> 7", "rounds 2 -> 3", "strategy.samples 4 -> 6"):
        assert change in msg
    assert "steps_per_round" not in msg and "allowed:" in msg
    with pytest.raises(ValueError, match='strategy "zerosum.query.BALDStrategy" -> "zerosum.query.EntropyStrategy"'):
        _fit(tmp_path, rounds=2, steps=3, ckpt_path="last")


def test_outputs_never_overwrite_another_run_and_find_the_random_baseline(tmp_path):
    """Run folders side by side (as a logger's version_N folders): the entropy run's curve finds the
    random run of the same protocol, not one of another protocol; a fresh run into a used folder is
    refused."""
    runs = tmp_path / "lightning_logs" / "active"  # the CLI's layout: <config>/version_N
    _fit(tmp_path / "a", out=runs / "random_digits" / "version_0", rounds=2, steps=2, strategy=RandomStrategy())
    _fit(tmp_path / "b", out=runs / "random_digits" / "version_1", rounds=2, steps=3, strategy=RandomStrategy())
    _fit(tmp_path / "c", out=runs / "entropy_digits" / "version_0", rounds=2, steps=2)  # (steps 3: another protocol)
    mine = runs / "entropy_digits" / "version_0"
    found = find_random_baselines(str(mine), json.load(open(mine / "labeled.json")))
    assert [name for name, _ in found] == ["random_digits/version_0"] and len(found[0][1]["rows"]) == 2
    with pytest.raises(ValueError, match="output_dir: .* already holds the results of another run"):
        _fit(tmp_path / "d", out=mine, rounds=2, steps=2)


def test_fast_dev_run_does_one_round_and_one_query(tmp_path):
    L.seed_everything(0)
    for length in ({"epochs_per_round": 10}, {"steps_per_round": 50}):
        pool, module = synthetic_pool(), TinyModule()
        al = ActiveLearning(RandomStrategy(), rounds=5, budget=4, output_dir=str(tmp_path / str(length)), **length)
        trainer = L.Trainer(callbacks=[al], fast_dev_run=1, **QUIET)
        trainer.fit(module, pool)
        assert al.completed_rounds == 1 and pool.num_labeled == 14 and trainer.global_step == 1


@pytest.mark.parametrize("kwargs,err,msg", [
    (dict(budget=0), ValueError, "budget: got 0; allowed"),
    (dict(budget=-0.5), ValueError, "budget: got -0.5; allowed"),
    (dict(strategy="entropy"), TypeError, "strategy: got str; allowed"),
    (dict(rounds=0), ValueError, "rounds: got 0; allowed"),
    (dict(steps_per_round=None), ValueError, "steps_per_round: .*allowed: exactly one"),
    (dict(epochs_per_round=2), ValueError, "steps_per_round: .*allowed: exactly one"),
    (dict(steps_per_round=0), ValueError, "steps_per_round: got 0; allowed"),
    (dict(select_weights="best"), ValueError, "select_weights: got 'best'; allowed"),
    (dict(eval_split="train"), ValueError, "eval_split: got 'train'; allowed"),
    (dict(plateau_min_delta=-1.0), ValueError, "plateau_min_delta: got -1.0; allowed"),
])
def test_bad_options_are_one_line_errors(kwargs, err, msg):
    args = dict(strategy=EntropyStrategy(), rounds=2, budget=5, steps_per_round=3)
    args.update(kwargs)
    with pytest.raises(err, match=msg):
        ActiveLearning(**args)


def test_bad_setups_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="rounds: .* exceeds the training split"):
        _fit(tmp_path, rounds=20, budget=10)
    trainer = L.Trainer(callbacks=[ActiveLearning(EntropyStrategy(), 2, 5, epochs_per_round=1)], max_epochs=1, **QUIET)
    from zerosum.datamodules import SyntheticDataModule

    with pytest.raises(TypeError, match="datamodule: .*wrap it as"):
        trainer.fit(TinyModule(), SyntheticDataModule())


@pytest.mark.slow
def test_ddp_ranks_label_the_same_indices_equal_to_single_process(tmp_path):
    L.seed_everything(0)
    # 91 train samples: uneven shards; the unlabeled stream (VAAL's loader) runs under DDP too;
    # best-on-val checks run sharded inside the round
    pool, module = synthetic_pool(num_train=101, unlabeled_stream=True), TinyModule()
    al = ActiveLearning(EntropyStrategy(), rounds=2, steps_per_round=4, budget=9, output_dir=str(tmp_path / "o"),
                        select_weights="best_val", val_every_n_steps=2)
    trainer = ddp_trainer(tmp_path, callbacks=[al, RankSnapshot(tmp_path, extra=ddp_selection_extra)], max_epochs=2)
    trainer.fit(module, pool)
    snaps = load_snapshots(tmp_path)
    for key in ("labeled_round", "entropy", "coreset", "bald", "stochastic"):
        assert torch.equal(snaps[0]["extra"][key], snaps[1]["extra"][key]), key
    assert int((snaps[0]["extra"]["labeled_round"] == 1).sum()) == 9
    assert snaps[0]["extra"]["unlabeled_batches"] == snaps[1]["extra"]["unlabeled_batches"] == 8  # 4 steps x 2 rounds
    # the sharded, gathered selection equals the single-process one on the same weights and pool
    single = TinyModule()
    single.load_state_dict(snaps[0]["state"])
    pool.setup("fit")
    pool.load_state_dict({"labeled_round": snaps[0]["extra"]["labeled_round"]})
    assert torch.equal(EntropyStrategy().select(None, single, pool, 7), snaps[0]["extra"]["entropy"])
    assert torch.equal(CoresetStrategy().select(None, single, pool, 7), snaps[0]["extra"]["coreset"])
    assert torch.equal(BALDStrategy(samples=5).select(None, single, pool, 7), snaps[0]["extra"]["bald"])
    rows = list(csv.DictReader(open(tmp_path / "o" / "rounds.csv")))
    assert [int(r["labeled"]) for r in rows] == [10, 19]
