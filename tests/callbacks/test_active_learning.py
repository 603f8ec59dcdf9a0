"""The ActiveLearning callback: a whole experiment in one fit, reinit, outputs, resume, DDP."""

import csv
import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from tests.helpers.active_learning import (CrashAt, CrashingStrategy, KeepSideModule, TinyModule, ddp_selection_extra,
                                          synthetic_pool)
from tests.helpers.ddp import RankSnapshot, ddp_trainer, load_snapshots
from zerosum.callbacks import ActiveLearning
from zerosum.modules import Classifier
from zerosum.query import CoresetStrategy, EntropyStrategy, RandomStrategy

QUIET = dict(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def _fit(tmp_path, strategy=None, rounds=3, epochs=2, budget=8, callbacks=(), ckpt_path=None, logger=False,
         module=None, **kw):
    L.seed_everything(0)
    pool, module = synthetic_pool(), (module() if module else TinyModule())
    al = ActiveLearning(strategy or EntropyStrategy(), rounds=rounds, epochs_per_round=epochs, budget=budget,
                        output_dir=str(tmp_path / "out"), **kw)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=1)  # (top_k=0 saves no last)
    trainer = L.Trainer(callbacks=[al, *callbacks, ckpt], logger=logger, default_root_dir=tmp_path, **QUIET)
    trainer.fit(module, pool, ckpt_path=ckpt_path)
    return trainer, module, pool, al


class Probe(L.Callback):
    """Records, per epoch, the pool indices trained on; at round starts, weights and optimizer state."""

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
    assert [(int(r["round"]), int(r["labeled"]), int(r["queried"])) for r in rows] == [(0, 10, 8), (1, 18, 8), (2, 26, 0)]
    assert all(0 <= float(r["test_acc"]) <= 1 for r in rows)
    record = json.load(open(tmp_path / "out" / "labeled.json"))
    assert record["indices"] == pool.labeled_indices.tolist()
    assert record["rounds"] == pool.labeled_round[pool.labeled_indices].tolist()
    assert (tmp_path / "out" / "learning_curve.png").stat().st_size > 1000
    # training sees exactly the labeled set of its round, reloaded after each query
    for epoch, ids in probe.seen.items():  # (drop_last: up to batch_size - 1 skipped per epoch)
        labeled_now = set(probe.starts[epoch][2].tolist())
        assert set(ids) <= labeled_now and len(set(ids)) > len(labeled_now) - 16
    assert len(probe.starts[2][2]) == 18 and len(probe.starts[4][2]) == 26
    assert set(probe.seen[2] + probe.seen[3]) & set((pool.labeled_round == 1).nonzero().squeeze(1).tolist())
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


def _classifier():  # with validation, batch norm and dropout: resume must replay the RNG too
    return Classifier(num_classes=4, in_channels=1, net="small_cnn", net_args={"width": 4, "dropout": 0.3})


@pytest.mark.parametrize("crash", ["mid_round", "after_query", "mid_query"])
def test_resume_equals_uninterrupted_run(tmp_path, crash):
    _, ref_module, ref_pool, ref_al = _fit(tmp_path / "ref", module=_classifier)
    if crash == "mid_round":  # epoch 2 is inside round 1
        strategy, callbacks, resume_epoch = EntropyStrategy(), [CrashAt(2)], 2
    elif crash == "after_query":  # round 1 ends at epoch 3: crash after its query, before its checkpoint
        strategy, callbacks, resume_epoch = EntropyStrategy(), [CrashAt(3)], 3
    else:  # the second query dies having half-labeled the pool
        strategy, callbacks, resume_epoch = CrashingStrategy(EntropyStrategy(), crash_on=2), [], 3
    with pytest.raises(RuntimeError, match="planned crash|killed mid-query"):
        _fit(tmp_path / "run", strategy=strategy, callbacks=callbacks, module=_classifier)
    assert (tmp_path / "run" / "ckpt" / "last.ckpt").exists()
    probe = Probe()
    _, module, pool, al = _fit(tmp_path / "run", ckpt_path="last", callbacks=[probe], module=_classifier)
    assert min(probe.starts) == resume_epoch  # really resumed from the last epoch-end checkpoint
    assert torch.equal(pool.labeled_round, ref_pool.labeled_round)  # nothing lost, nothing twice
    assert [h["labeled"] for h in al.history] == [10, 18, 26]
    ref_rows = (tmp_path / "ref" / "out" / "rounds.csv").read_text().splitlines()
    rows = (tmp_path / "run" / "out" / "rounds.csv").read_text().splitlines()
    strip = lambda lines: [line.rsplit(",", 2)[0] for line in lines]  # noqa: E731  (drop timing, epoch)
    assert strip(rows) == strip(ref_rows)
    for k, v in ref_module.state_dict().items():
        assert torch.equal(module.state_dict()[k], v), k


def test_fast_dev_run_does_one_round_and_one_query(tmp_path):
    L.seed_everything(0)
    pool, module = synthetic_pool(), TinyModule()
    al = ActiveLearning(RandomStrategy(), rounds=5, epochs_per_round=10, budget=4, output_dir=str(tmp_path))
    L.Trainer(callbacks=[al], fast_dev_run=1, **QUIET).fit(module, pool)
    assert al.completed_rounds == 1 and pool.num_labeled == 14


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="budget must be"):
        ActiveLearning(EntropyStrategy(), rounds=2, epochs_per_round=1, budget=0)
    with pytest.raises(ValueError, match="budget must be"):
        ActiveLearning(EntropyStrategy(), rounds=2, epochs_per_round=1, budget=-0.5)
    with pytest.raises(TypeError, match="QueryStrategy"):
        ActiveLearning("entropy", rounds=2, epochs_per_round=1, budget=5)
    with pytest.raises(ValueError, match="exceeds the training split"):
        _fit(tmp_path, rounds=20, budget=10)
    trainer = L.Trainer(callbacks=[ActiveLearning(EntropyStrategy(), 2, 1, 5)], max_epochs=1, **QUIET)
    from zerosum.datamodules import SyntheticDataModule

    with pytest.raises(TypeError, match="wrap it as"):
        trainer.fit(TinyModule(), SyntheticDataModule())


@pytest.mark.slow
def test_ddp_ranks_label_the_same_indices_equal_to_single_process(tmp_path):
    L.seed_everything(0)
    # 91 train samples: uneven shards; the unlabeled stream (VAAL's loader) runs under DDP too
    pool, module = synthetic_pool(num_train=101, unlabeled_stream=True), TinyModule()
    al = ActiveLearning(EntropyStrategy(), rounds=2, epochs_per_round=1, budget=9, output_dir=str(tmp_path / "o"))
    trainer = ddp_trainer(tmp_path, callbacks=[al, RankSnapshot(tmp_path, extra=ddp_selection_extra)], max_epochs=2)
    trainer.fit(module, pool)
    snaps = load_snapshots(tmp_path)
    for key in ("labeled_round", "entropy", "coreset"):
        assert torch.equal(snaps[0]["extra"][key], snaps[1]["extra"][key]), key
    assert int((snaps[0]["extra"]["labeled_round"] == 1).sum()) == 9
    assert snaps[0]["extra"]["unlabeled_batches"] > 0 and snaps[1]["extra"]["unlabeled_batches"] > 0
    # the sharded, gathered selection equals the single-process one on the same weights and pool
    single = TinyModule()
    single.load_state_dict(snaps[0]["state"])
    pool.setup("fit")
    pool.load_state_dict({"labeled_round": snaps[0]["extra"]["labeled_round"]})
    assert torch.equal(EntropyStrategy().select(None, single, pool, 7), snaps[0]["extra"]["entropy"])
    assert torch.equal(CoresetStrategy().select(None, single, pool, 7), snaps[0]["extra"]["coreset"])
    rows = list(csv.DictReader(open(tmp_path / "o" / "rounds.csv")))
    assert [int(r["labeled"]) for r in rows] == [10, 19]
