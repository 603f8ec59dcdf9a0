import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.helpers.ddp import ddp_trainer
from zerosum.construct import (
    ConstructionData,
    NonRobustFeatureDataset,
    RobustFeatureDataset,
    ShardWriter,
    invert_representation,
)
from zerosum.construct.inversion import Representation
from zerosum.datamodules import ConstructedDataModule, SyntheticDataModule
from zerosum.modules import AdversarialTraining
from zerosum.nets import SmallCNN


class CountingWriter(ShardWriter):
    """Logs which rank wrote which shard (one file per rank), to check each shard is written once."""

    def write_on_batch_end(self, trainer, pl_module, prediction, *args, **kwargs):
        super().write_on_batch_end(trainer, pl_module, prediction, *args, **kwargs)
        if prediction is not None:
            with open(self.out_dir / f"writes_rank{trainer.global_rank}.txt", "a") as f:
                f.write(f"{prediction['shard']}\n")


def _data(**kw):
    return SyntheticDataModule(num_train=120, num_test=40, num_classes=4, image_size=8, noise=0.3,
                               normalize=False, batch_size=32, val_size=20, **kw)


def _source(dm, **kw):
    torch.manual_seed(0)
    return AdversarialTraining(4, 1, net="small_cnn", net_args={"width": 8}, eps=0.0,
                               data_mean=dm.mean, data_std=dm.std, **kw)


def _trained_source(dm, epochs=3):
    source = _source(dm, optimizer=lambda params: torch.optim.Adam(params, lr=0.01))
    L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=epochs,
              enable_checkpointing=False).fit(source, dm)
    return source


def _predict(module, dm, out, shard_size=25, writer_cls=ShardWriter):
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[writer_cls(str(out))])
    trainer.predict(module, datamodule=ConstructionData(dm, shard_size=shard_size), return_predictions=False)
    return json.loads((Path(out) / "manifest.json").read_text())


def calibrated_cnn(width: int) -> SmallCNN:
    """A small CNN in eval mode whose BatchNorm statistics come from 20 batches of inputs (not the initial ones)."""
    net = SmallCNN(num_classes=4, in_channels=1, width=width).train()
    with torch.no_grad():
        for _ in range(20):
            net(torch.rand(64, 1, 8, 8))
    return net.eval()


def test_inversion_matches_features_by_orders_of_magnitude():
    torch.manual_seed(0)
    net = calibrated_cnn(width=8)
    x, x0 = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    g = net.features
    with torch.no_grad():
        before = (g(x0) - g(x)).norm(dim=1)
        x_r = invert_representation(net, x, x0, step_size=0.02, steps=300)
        after = (g(x_r) - g(x)).norm(dim=1)
    # fixed-length steps (the paper's) oscillate near the optimum and ReLU nets have local minima,
    # so: ~two orders of magnitude for the typical sample, at least one for every sample
    ratio = after / before
    assert ratio.median() < 1 / 50 and (ratio < 1 / 10).all(), ratio
    assert x_r.min() >= 0 and x_r.max() <= 1 and not net.training
    assert (x_r - x).flatten(1).norm(dim=1).min() > 0.1  # matched features, not copied pixels


def test_det_round_trip_and_relabel(tmp_path):
    dm = _data()
    source = _source(dm)
    ckpt = tmp_path / "source.ckpt"
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                        enable_checkpointing=False)
    trainer.fit(source, dm)
    trainer.save_checkpoint(ckpt)
    module = NonRobustFeatureDataset(num_classes=4, target="det", eps=0.5, step_size=0.1, steps=20,
                                     checkpoint=str(ckpt), store_dtype="uint8")
    manifest = _predict(module, dm, tmp_path / "d_det")
    n = 120 - 20
    assert manifest["complete"] and manifest["num_samples"] == n and manifest["num_shards"] == 4
    assert manifest["settings"]["kind"] == "d_det" and manifest["settings"]["source_checkpoint"] == str(ckpt)
    assert manifest["settings"]["attack"]["eps"] == 0.5 and manifest["dtype"] == "uint8"
    shards = [torch.load(tmp_path / "d_det" / s["file"], weights_only=False) for s in manifest["shards"]]
    orig = torch.cat([s["orig_labels"] for s in shards])
    new = torch.cat([s["labels"] for s in shards])
    assert torch.equal(new, (orig + 1) % 4)
    assert torch.equal(torch.cat([s["index"] for s in shards]), torch.arange(n))
    # perturbations stay in the eps-ball (up to uint8 rounding) and the labels come back unchanged
    dm.setup("fit")
    clean = torch.stack([dm.train_set_eval[i][0] for i in range(n)])
    adv = torch.cat([s["images"] for s in shards]).float() / 255
    assert ((adv - clean).flatten(1).norm(dim=1) <= 0.5 + 0.5 / 255 * 8).all()
    hits = torch.cat([s["target_hit"] for s in shards]).float()
    assert manifest["stats"]["target_hit_rate"] == pytest.approx(float(hits.mean()))
    data = ConstructedDataModule(str(tmp_path / "d_det"), _data(), batch_size=16, augment=False, min_hit_rate=0.0)
    assert data.num_classes == 4 and data.normalize is False
    data.setup("fit")
    assert len(data.train_set) == n
    x, y, i = next(iter(data.train_dataloader()))
    assert torch.equal(y, new[i]) and torch.allclose(x, adv[i])
    assert len(data.test_set) == 40  # evaluation on the original test split


def test_random_targets_are_seeded_and_reached(tmp_path):
    dm = _data()
    source = _trained_source(dm)  # an untrained net cannot output every class at all
    kw = dict(num_classes=4, target="random", eps=3.0, step_size=0.3, steps=30, source=source)
    m1 = _predict(NonRobustFeatureDataset(seed=1, **kw), dm, tmp_path / "a", shard_size=50)
    m2 = _predict(NonRobustFeatureDataset(seed=1, **kw), dm, tmp_path / "b", shard_size=30)
    labels = [torch.cat([torch.load(tmp_path / d / s["file"], weights_only=False)["labels"] for s in m["shards"]])
              for d, m in (("a", m1), ("b", m2))]
    assert torch.equal(labels[0], labels[1])  # independent of sharding
    assert len(labels[0].unique()) == 4
    assert m1["stats"]["target_hit_rate"] > 0.9  # large eps: the standard model is fooled toward t


def test_resume_skips_written_shards_and_refuses_other_settings(tmp_path):
    dm = _data()
    source = _source(dm)
    out = tmp_path / "d_nr"
    make = dict(robust=False, step_size=0.1, steps=5, source=source)
    _predict(RobustFeatureDataset(**make), dm, out)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.pt")}
    os.remove(out / "shard_00002.pt")
    manifest = _predict(RobustFeatureDataset(**make), dm, out, writer_cls=CountingWriter)
    assert manifest["complete"]
    assert (out / "writes_rank0.txt").read_text().split() == ["2"]
    for name, mtime in kept.items():
        if name != "shard_00002.pt":
            assert (out / name).stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="other settings"):
        _predict(RobustFeatureDataset(**{**make, "steps": 6}), dm, out)


def test_robust_dataset_starts_elsewhere_and_keeps_labels(tmp_path):
    dm = _data()
    manifest = _predict(RobustFeatureDataset(robust=True, step_size=0.1, steps=50, source=_source(dm)), dm,
                        tmp_path / "d_r")
    shard = torch.load(tmp_path / "d_r" / "shard_00000.pt", weights_only=False)
    assert torch.equal(shard["labels"], shard["orig_labels"])
    assert (shard["start_index"] != shard["index"]).all()
    assert manifest["stats"]["inversion_rel_loss"] < 0.5 and manifest["stats"]["inversion_loss"] > 0


def test_bad_options(tmp_path):
    dm = _data()
    with pytest.raises(ValueError, match="target: "):
        NonRobustFeatureDataset(num_classes=4, target="next", source=_source(dm))
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        RobustFeatureDataset()
    with pytest.raises(ValueError, match="normalize: false"):
        ConstructionData(SyntheticDataModule(normalize=True))
    with pytest.raises(Exception, match="manifest.json missing"):
        ConstructedDataModule(str(tmp_path / "nothing"), _data()).setup("fit")


def test_ddp_construction_writes_each_shard_once(tmp_path):
    dm = _data()
    out = tmp_path / "d_det"
    module = NonRobustFeatureDataset(num_classes=4, target="det", steps=3, source=_source(dm))
    trainer = ddp_trainer(tmp_path, callbacks=[CountingWriter(str(out))])
    trainer.predict(module, datamodule=ConstructionData(dm, shard_size=15), return_predictions=False)
    writes = [(out / f"writes_rank{r}.txt").read_text().split() for r in range(2)]
    assert writes[0] and writes[1]  # both ranks worked
    assert sorted(int(k) for k in writes[0] + writes[1]) == list(range(7))  # 100 samples / 15 -> 7 shards, once each
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and sum(s["count"] for s in manifest["shards"]) == 100


def test_inversion_of_a_wider_layer_matches_that_layer():
    torch.manual_seed(0)
    net = calibrated_cnn(width=4)
    g = Representation(net, "backbone.5")  # 8 channels x 2 x 2 after the second max-pool
    x, x0 = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert g(x).shape == (4, 32) and net.features(x).shape == (4, 8)
        before = (g(x0) - g(x)).norm(dim=1)
        wide = (g(invert_representation(net, x, x0, step_size=0.05, steps=200, layer="backbone.5")) - g(x)).norm(dim=1)
        narrow = (g(invert_representation(net, x, x0, step_size=0.05, steps=200)) - g(x)).norm(dim=1)
    assert (wide < before / 2).all() and (wide < narrow).all(), (before, wide, narrow)
    with pytest.raises(ValueError, match="^representation: SmallCNN has no submodule 'backbone.9'"):
        RobustFeatureDataset(source=net, representation="backbone.9", fake_relu=False)
