import lightning as L
import pytest
import torch

from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import AdversarialTraining
from zerosum.nets import Normalized


def adam(params):
    return torch.optim.Adam(params, lr=0.01)


def _data(**kw):
    return SyntheticDataModule(num_train=512, num_test=128, num_classes=4, image_size=8, noise=0.5, normalize=False,
                               batch_size=64, **kw)


def _model(dm, eps, **kw):
    return AdversarialTraining(4, 1, net="small_cnn", net_args={"width": 8}, norm="linf", eps=eps, steps=5,
                               eval_eps=0.1, optimizer=adam,
                               data_mean=dm.mean, data_std=dm.std, **kw)


def _quiet(**kw):
    return L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kw)


def test_defaults_follow_madry():
    m = AdversarialTraining(10, 3, net="small_cnn")
    assert isinstance(m.net, Normalized)
    assert (m.attack.norm, m.attack.eps, m.attack.steps) == ("l2", 0.5, 7)
    assert m.attack.step_size == pytest.approx(2.5 * 0.5 / 7)
    m = AdversarialTraining(10, 3, net="small_cnn", norm="linf", eps=8 / 255)
    assert m.attack.step_size == pytest.approx(2.5 * 8 / 255 / 7)
    with pytest.raises(ValueError, match="norm: "):
        AdversarialTraining(10, 3, net="small_cnn", norm="l1")


@pytest.mark.parametrize("kwargs,option", [(dict(steps=0), "steps: 0"), (dict(step_size=0.0), "step_size: 0.0"),
                                           (dict(step_size=-0.1), "step_size: -0.1"),
                                           (dict(eval_steps=0), "eval_steps: 0"), (dict(eps=-0.5), "eps: -0.5")])
def test_a_game_with_no_attack_step_is_refused(kwargs, option):
    with pytest.raises(ValueError, match=f"^{option}.*; allowed: "):
        AdversarialTraining(10, 3, net="small_cnn", **{"eps": 0.5, **kwargs})


def test_standard_training_needs_no_attack_steps():
    m = AdversarialTraining(10, 3, net="small_cnn", eps=0.0, steps=0, step_size=0.0)
    assert not m.attack.active and not m.eval_attack.active


def test_adversarial_training_is_more_robust_than_standard():
    results = {}
    for eps in (0.0, 0.1):
        L.seed_everything(0)
        dm = _data()
        model = _model(dm, eps)
        trainer = _quiet(max_epochs=4)
        trainer.fit(model, dm)
        results[eps] = trainer.test(model, dm, verbose=False)[0]
    # both learn the task; only the adversarially trained one resists the eps = 0.1 attack
    assert results[0.0]["test/acc"] > 0.6 and results[0.1]["test/acc"] > 0.6
    assert results[0.1]["test/robust_acc"] > results[0.0]["test/robust_acc"] + 0.1
    assert results[0.0]["test/robust_acc"] < results[0.0]["test/acc"]


def test_training_step_uses_adversarial_examples():
    L.seed_everything(0)
    dm = _data()
    dm.setup("fit")
    x, y, _ = next(iter(dm.train_dataloader()))
    model = _model(dm, 0.2)
    seen = []
    model.net.register_forward_hook(lambda mod, inp, out: seen.append((mod.training, inp[0].detach().clone())))
    model.training_step((x, y, None), 0)
    train_inputs = [inp for training, inp in seen if training]
    assert len(train_inputs) == 1  # one forward in train mode, on the PGD output
    delta = (train_inputs[0] - x).abs().amax()
    assert 0 < delta <= 0.2 + 1e-6
    assert all(p.grad is None for p in model.parameters())


def test_ddp_adversarial_training(tmp_path):
    dm = _data()
    model = _model(dm, 0.1)
    trainer = ddp_trainer(tmp_path, callbacks=[RankSnapshot(tmp_path)], limit_train_batches=3, limit_val_batches=1)
    trainer.fit(model, dm)
    snaps = assert_ranks_in_sync(tmp_path)
    initial = _model(dm, 0.1).state_dict()
    assert any(not torch.equal(v, snaps[0]["state"][k]) for k, v in initial.items() if v.is_floating_point())
