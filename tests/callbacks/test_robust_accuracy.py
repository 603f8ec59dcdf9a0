import lightning as L
import pytest
import torch

from tests.helpers.ddp import RankSnapshot, ddp_trainer, load_snapshots
from zerosum.callbacks import RobustAccuracy
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import AdversarialTraining, Classifier


def robust_history(trainer, module):
    return next(cb for cb in trainer.callbacks if isinstance(cb, RobustAccuracy)).history


def adam(params):
    return torch.optim.Adam(params, lr=0.01)


def _data(normalize=False):
    return SyntheticDataModule(num_train=256, num_test=96, num_classes=4, image_size=8, noise=0.5,
                               normalize=normalize, batch_size=32, val_size=64)


def _quiet(**kw):
    return L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kw)


def test_matches_the_module_own_robust_accuracy():
    """Same deterministic attack (no random start) => the callback and AdversarialTraining agree."""
    L.seed_everything(0)
    dm = _data()
    model = AdversarialTraining(4, 1, net="small_cnn", net_args={"width": 8}, norm="l2", eps=0.5, steps=5,
                                random_start=False, data_mean=dm.mean, data_std=dm.std,
                                optimizer=adam)
    cb = RobustAccuracy(norm="l2", eps=0.5, steps=5, random_start=False, splits=("test",))
    trainer = _quiet(max_epochs=2, callbacks=[cb])  # default inference_mode=True
    trainer.fit(model, dm)
    out = trainer.test(model, dm, verbose=False)[0]
    assert out["test/robust_acc@l2"] == pytest.approx(out["test/robust_acc"], abs=1e-6)
    assert out["test/robust_acc@l2_clean"] == pytest.approx(out["test/acc"], abs=1e-6)
    assert out["test/robust_acc@l2"] < out["test/acc"]
    assert cb.history[-1]["total"] == 96


def test_every_n_epochs_and_any_classifier():
    L.seed_everything(0)
    dm = _data()
    cb = RobustAccuracy(eps=0.05, steps=3, every_n_epochs=2, splits=("val",), max_batches=1)
    trainer = _quiet(max_epochs=5, callbacks=[cb], num_sanity_val_steps=1)
    trainer.fit(Classifier(4, 1, net="small_cnn", net_args={"width": 8}), dm)
    assert [h["epoch"] for h in cb.history] == [1, 3]
    assert all(h["total"] == 32 and 0 <= h["robust"] <= 1 for h in cb.history)
    assert "val/robust_acc@linf" in trainer.callback_metrics


def test_refuses_normalizing_datamodule():
    with pytest.raises(ValueError, match="normalize: false"):
        _quiet(max_epochs=1, callbacks=[RobustAccuracy()]).fit(Classifier(4, 1, net="small_cnn"), _data(normalize=True))
    with pytest.raises(ValueError, match="splits"):
        RobustAccuracy(splits=("train",))


def test_ddp_counts_every_val_sample_once(tmp_path):
    dm = _data()
    cb = RobustAccuracy(eps=0.05, steps=2, splits=("val",))
    trainer = ddp_trainer(tmp_path, callbacks=[cb, RankSnapshot(tmp_path, extra=robust_history)],
                          limit_train_batches=2)
    trainer.fit(Classifier(4, 1, net="small_cnn", net_args={"width": 8}), dm)
    h0, h1 = (s["extra"] for s in load_snapshots(tmp_path))
    assert h0 == h1 and h0[-1]["total"] == 64  # 2 ranks x 32 samples, reduced
