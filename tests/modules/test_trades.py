import functools

import pytest
import torch
from torch.nn import functional as F

from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from zerosum.datamodules import SyntheticDataModule
from zerosum.losses import trades_kl
from zerosum.modules import TRADES
from zerosum.attacks.trades import trades_attack


def _model(optimizer=torch.optim.Adam) -> TRADES:
    torch.manual_seed(0)
    return TRADES(num_classes=4, in_channels=1, net="small_cnn", net_args={"width": 8}, steps=3, eps=4 / 255,
                  optimizer=optimizer)


def test_trades_attack_raises_the_kl_within_the_ball():
    model = _model().eval()
    x = torch.rand(16, 1, 8, 8)
    x_adv = trades_attack(model.net, x, eps=4 / 255, step_size=2 / 255, steps=5)
    assert (x_adv - x).abs().max() <= 4 / 255 + 1e-6
    with torch.no_grad():
        clean = model(x)
        start = x + 0.001 * torch.randn_like(x)
        assert trades_kl(model(x_adv), clean).mean() > 2 * trades_kl(model(start), clean).mean()


def test_training_step_lowers_the_trades_loss_on_a_fixed_batch():
    model = _model(optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
    dm = SyntheticDataModule(batch_size=32, normalize=False)
    dm.setup()
    x, y, _ = next(iter(dm.train_dataloader()))

    def loss():
        x_adv = trades_attack(model.net, x, eps=4 / 255, step_size=2 / 255, steps=3)
        logits = model(x)
        return F.cross_entropy(logits, y) + 6 * trades_kl(model(x_adv), logits).mean()

    before = loss().item()
    for _ in range(15):  # outside a Trainer, each step updates the model with its own optimizer
        model.training_step((x, y), 0)
    assert loss().item() < 0.5 * before


def robustness_extra(trainer, pl_module):
    """The ClassRobustness callback's last validation result on this rank."""
    cb = next(c for c in trainer.callbacks if type(c).__name__ == "ClassRobustness")
    return cb.last.get("val")


def test_ddp_two_ranks_in_sync_with_class_robustness(tmp_path):
    from zerosum.callbacks import ClassRobustness

    dm = SyntheticDataModule(batch_size=16, num_train=128, normalize=False)
    model = _model()
    cb = ClassRobustness(eps=4 / 255, step_size=2 / 255, steps=3)
    trainer = ddp_trainer(tmp_path, callbacks=[RankSnapshot(tmp_path, extra=robustness_extra), cb], max_epochs=1,
                          inference_mode=False)
    trainer.fit(model, dm)
    snaps = assert_ranks_in_sync(tmp_path)
    a, b = snaps[0]["extra"], snaps[1]["extra"]
    assert a is not None and b is not None
    for k in a:  # the per-class errors are reduced over both ranks' validation shards
        assert torch.equal(torch.nan_to_num(a[k], -1.0), torch.nan_to_num(b[k], -1.0)), k
    assert (a["robust"] >= a["natural"]).all()


def test_degenerate_inner_maximisation_is_refused():
    with pytest.raises(ValueError, match="^steps: 0 .*; allowed: "):
        TRADES(4, 1, net="small_cnn", steps=0)
    with pytest.raises(ValueError, match="^step_size: 0.0 .*; allowed: "):
        TRADES(4, 1, net="small_cnn", step_size=0.0)
    with pytest.raises(ValueError, match="^beta: -1"):
        TRADES(4, 1, net="small_cnn", beta=-1.0)
