"""KNNAccuracy and OnlineLinearProbe on an own plain LightningModule (``x, y = batch``, no
``features``) and an own LightningDataModule (TensorDatasets, ``random_split``), one process and two."""

import lightning as L
import pytest
import torch

from examples.own_project import DigitsData, LitClassifier
from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from tests.helpers.own_project import callback_state
from zerosum.callbacks import KNNAccuracy, OnlineLinearProbe
from zerosum.callbacks.knn_accuracy import knn_predict


def quiet_trainer(tmp_path, **kwargs):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0, **kwargs)


def brute_force_knn_accuracy(model, dm, k=20, temperature=0.07) -> float:
    """The kNN accuracy computed directly: trunk features of every training sample as the bank."""
    model.eval()
    with torch.no_grad():
        bank_x, bank_y = map(torch.stack, zip(*[(x, torch.as_tensor(y)) for x, y in dm.train_set]))
        val_x, val_y = map(torch.stack, zip(*[(x, torch.as_tensor(y)) for x, y in dm.val_set]))
        pred = knn_predict(model.net.trunk(val_x), model.net.trunk(bank_x), bank_y, 10, k, temperature)
    return float((pred == val_y).float().mean())


class NoBank(DigitsData):
    bank_dataloader = None


def validated_knn(tmp_path, model, dm, **kwargs) -> tuple[float, KNNAccuracy]:
    knn = KNNAccuracy(feature_fn="net.trunk", **kwargs)
    trainer = quiet_trainer(tmp_path, callbacks=[knn])
    trainer.validate(model, dm)
    return float(trainer.callback_metrics["knn/val_acc"]), knn


def test_knn_reads_the_bank_from_the_datamodules_hooks_and_matches_brute_force(tmp_path):
    torch.manual_seed(0)
    model, dm = LitClassifier(), DigitsData()
    acc, knn = validated_knn(tmp_path, model, dm)  # the bank_dataloader() hook
    assert knn.last_bank_size == len(dm.train_set) == knn.last_local_rows
    expected = brute_force_knn_accuracy(model, dm)
    assert acc == pytest.approx(expected, abs=1e-6)
    # a datamodule method named by the callback (74 divides the 1258 training samples: nothing dropped)
    acc, _ = validated_knn(tmp_path, model, DigitsData(batch_size=74), bank_loader="train_dataloader")
    assert acc == pytest.approx(expected, abs=1e-6)


def test_knn_without_a_bank_and_probe_without_features_say_what_to_add(tmp_path):
    with pytest.raises(ValueError, match=r"^bank_loader: KNNAccuracy needs a bank .*NoBank.*LitClassifier.*allowed: a "
                                         r"bank_dataloader\(\)"):
        quiet_trainer(tmp_path, callbacks=[KNNAccuracy()]).validate(LitClassifier(), NoBank())
    with pytest.raises(TypeError, match=r"^feature_fn: OnlineLinearProbe needs features and LitClassifier gives none"):
        quiet_trainer(tmp_path, callbacks=[OnlineLinearProbe()], max_steps=1).fit(LitClassifier(), DigitsData())
    with pytest.raises(ValueError, match=r"^feature_fn: LitClassifier has no 'net.body'"):
        quiet_trainer(tmp_path, callbacks=[KNNAccuracy(feature_fn="net.body")]).validate(LitClassifier(), DigitsData())


def test_the_probe_leaves_the_model_as_it_would_train_without_it(tmp_path):
    """The probe's extra forward (feature_fn on a plain module) runs in eval mode: no BatchNorm
    statistics move, no dropout is drawn, so the trained weights and buffers are the same."""
    states = []
    for callbacks in ([], [OnlineLinearProbe(feature_fn="net.trunk")]):
        L.seed_everything(0)
        model = LitClassifier()
        quiet_trainer(tmp_path, callbacks=callbacks, max_steps=3, limit_val_batches=0).fit(model, DigitsData())
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["net.trunk.1.running_mean"], torch.zeros(32))  # BatchNorm did train


def test_ddp_bank_is_sharded_and_gathered_and_both_callbacks_agree_across_ranks(tmp_path):
    """Two ranks: each computes half of the kNN bank, both hold all of it, the logged accuracy is the
    single-process brute-force one for the final weights; the probe's weights are identical on both
    ranks and it learns (probe/val_acc, summed over ranks, well above chance after one epoch)."""
    torch.manual_seed(0)
    model, dm = LitClassifier(), DigitsData(batch_size=32)
    callbacks = [OnlineLinearProbe(feature_fn="net.trunk"), KNNAccuracy(feature_fn="net.trunk"),
                 RankSnapshot(tmp_path, extra=callback_state)]
    ddp_trainer(tmp_path, callbacks=callbacks, max_epochs=1).fit(model, dm)
    snaps = assert_ranks_in_sync(tmp_path)
    dm.setup()
    n = len(dm.train_set)
    extra = [s["extra"] for s in snaps]
    assert [e["bank_size"] for e in extra] == [n, n]
    assert [e["local_rows"] for e in extra] == [-(-n // 2)] * 2  # sharded: half of the bank per rank
    for a, b in zip(*(e["probe"] for e in extra)):
        assert torch.equal(a, b)
    final = LitClassifier()
    final.load_state_dict(snaps[0]["state"])
    expected = brute_force_knn_accuracy(final, dm)
    for e in extra:
        assert e["metrics"]["knn/val_acc"] == pytest.approx(expected, abs=1e-6)
        assert e["metrics"]["probe/val_acc"] == extra[0]["metrics"]["probe/val_acc"] > 0.25  # chance: 0.1
