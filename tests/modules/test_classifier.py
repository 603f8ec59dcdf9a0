import torch
from torch.nn import functional as F

from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import Classifier


def test_training_step_lowers_loss_on_fixed_batch():
    torch.manual_seed(0)
    dm = SyntheticDataModule(batch_size=32)
    dm.setup()
    x, y, _ = next(iter(dm.train_dataloader()))
    model = Classifier(num_classes=dm.num_classes, in_channels=dm.in_channels, net_args={"width": 8})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = F.cross_entropy(model(x), y).item()
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert F.cross_entropy(model(x), y).item() < 0.5 * before


def test_features_feed_the_head():
    model = Classifier(num_classes=3, in_channels=1, net_args={"width": 8}).eval()
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(model.net.head(model.features(x)), model(x), atol=1e-6)


def test_ddp_two_ranks_end_with_identical_weights(tmp_path):
    dm = SyntheticDataModule(batch_size=16, num_train=128)
    torch.manual_seed(0)
    model = Classifier(num_classes=dm.num_classes, in_channels=dm.in_channels, net_args={"width": 8})
    trainer = ddp_trainer(tmp_path, callbacks=[RankSnapshot(tmp_path)], max_epochs=2)
    trainer.fit(model, dm)
    snaps = assert_ranks_in_sync(tmp_path)
    torch.manual_seed(0)
    initial = Classifier(num_classes=dm.num_classes, in_channels=dm.in_channels, net_args={"width": 8})
    moved = [k for k, v in snaps[0]["state"].items() if v.is_floating_point() and k in initial.state_dict()
             and not torch.equal(v, initial.state_dict()[k])]
    assert moved, "training changed no weight"
