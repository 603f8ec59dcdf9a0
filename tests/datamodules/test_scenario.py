import json

import pytest
import torch

from zerosum.datamodules import DigitsDataModule, ScenarioDataModule
from zerosum.datamodules.indexed import dataset_targets
from zerosum.datamodules.scenario import corrupt_labels, long_tail_counts


def _scenario(**kwargs) -> ScenarioDataModule:
    dm = ScenarioDataModule(DigitsDataModule(batch_size=32, normalize=False), **kwargs)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("noise", ["symmetric", "pair", "pair_next"])
def test_label_noise_has_the_exact_rate_and_kind(noise):
    dm = _scenario(noise=noise, noise_rate=0.2, meta_per_class=10)
    n = len(dm.targets)
    assert int(dm.is_noisy.sum()) == round(0.2 * n)
    assert torch.equal(dm.is_noisy, dm.targets != dm.clean_targets)
    flips = torch.zeros(10, 10, dtype=torch.long)
    for a, b in zip(dm.clean_targets[dm.is_noisy], dm.targets[dm.is_noisy]):
        flips[a, b] += 1
    if noise == "pair_next":
        assert torch.equal(dm.targets[dm.is_noisy], (dm.clean_targets[dm.is_noisy] + 1) % 10)
    elif noise == "pair":  # official flip2: each class flips to exactly two partner classes, about half each
        assert ((flips > 0).sum(1) == 2).all() and flips.diagonal().sum() == 0
        shares = flips.max(1).values.float() / flips.sum(1)
        assert (shares < 0.8).all(), shares
        assert len({tuple(sorted(torch.nonzero(row).flatten().tolist())) for row in flips}) > 3  # not y+1, y+2
    else:  # several wrong classes reached from each true class
        flips = {(int(a), int(b)) for a, b in zip(dm.clean_targets[dm.is_noisy], dm.targets[dm.is_noisy])}
        assert len(flips) > 20
    # the training batches carry the noisy labels, with sample indices
    assert torch.equal(dataset_targets(dm.train_set), dm.targets)
    assert dm.train_set[5][1] == int(dm.targets[5]) and dm.train_set[5][2] == 5


def test_noise_is_seeded():
    a, b = _scenario(noise="symmetric", noise_rate=0.3, meta_per_class=5), _scenario(noise="symmetric", noise_rate=0.3, meta_per_class=5)
    c = _scenario(noise="symmetric", noise_rate=0.3, meta_per_class=5, seed=1)
    assert torch.equal(a.targets, b.targets) and not torch.equal(a.is_noisy, c.is_noisy)


def test_long_tail_follows_the_imbalance_factor():
    dm = _scenario(imbalance_factor=10, meta_per_class=10)
    counts = dm.scenario["clean_class_counts"]
    assert counts == long_tail_counts(counts[0], 10, 10)
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.1)
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    # the official class_rate: the designed profile, proportional to the realised clean counts here
    design = dm.design_class_counts.float()
    assert torch.allclose(design / design.sum(), torch.tensor(counts).float() / sum(counts), atol=0.01)


def test_designed_class_counts_are_equal_without_long_tail_whatever_the_noise():
    dm = _scenario(noise="pair", noise_rate=0.2, meta_per_class=10)
    assert len(set(dm.scenario["observed_class_counts"])) > 1  # the noisy label counts differ by class
    assert len(set(dm.design_class_counts.tolist())) == 1


def test_meta_set_is_clean_balanced_and_disjoint_from_training():
    dm = _scenario(noise="pair", noise_rate=0.4, imbalance_factor=5, meta_per_class=10)
    meta_positions = set(dm.meta_set.dataset.indices.tolist())
    train_positions = set(dm.train_set.dataset.dataset.indices.tolist())
    assert not meta_positions & train_positions
    assert torch.bincount(dataset_targets(dm.meta_set), minlength=10).tolist() == [10] * 10
    batch = next(iter(dm.train_dataloader()))[0]
    assert set(batch) == {"train", "meta"}


def test_scenario_is_recorded(tmp_path):
    import lightning as L

    dm = ScenarioDataModule(DigitsDataModule(batch_size=32), noise="pair", noise_rate=0.2, meta_per_class=3)
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path))
    dm.trainer = L.Trainer(default_root_dir=str(tmp_path), logger=logger)
    dm.setup("fit")
    saved = json.loads((tmp_path / "lightning_logs" / "version_0" / "scenario.json").read_text())
    assert saved["noise"] == "pair" and saved["realised_noise_rate"] == pytest.approx(0.2, abs=0.01)
    assert logger.experiment.hparams["scenario"]["seed"] == 0
    assert dm.hparams["scenario"]["meta_class_counts"] == [3] * 10


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="^noise: 'flip'; allowed: "):
        ScenarioDataModule(DigitsDataModule(), noise="flip", meta_per_class=1)
    with pytest.raises(ValueError, match="meta_per_class"):
        ScenarioDataModule(DigitsDataModule(), combine_meta=True)
    with pytest.raises(ValueError, match="noise_rate"):
        corrupt_labels(torch.zeros(3, dtype=torch.long), 2, "pair", 1.5, torch.Generator())


def test_validation_on_the_meta_set():
    dm = _scenario(noise="pair", noise_rate=0.2, meta_per_class=6, validate_on="meta")
    batches = list(dm.val_dataloader())
    labels = torch.cat([b[1] for b in batches])
    assert torch.bincount(labels, minlength=10).tolist() == [6] * 10  # clean and balanced
    assert set(dm.val_set.dataset.indices.tolist()) == set(dm.meta_set.dataset.indices.tolist())
    with pytest.raises(ValueError, match="^validate_on: 'test'; allowed: val, meta"):
        ScenarioDataModule(DigitsDataModule(), meta_per_class=2, validate_on="test")
