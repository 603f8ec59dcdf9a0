"""ActivePoolDataModule: initial sets, labeling, loaders over the right samples, state."""

import pytest
import torch
from lightning.pytorch.utilities import CombinedLoader

from tests.helpers.active_learning import synthetic_pool
from zerosum.datamodules import ActivePoolDataModule, EpochShuffleSampler, SyntheticDataModule, dataset_targets


def _pool(**kw):
    pool = synthetic_pool(**kw)
    pool.setup("fit")
    return pool


def _ids(loader):
    return torch.cat([b[2] for b in loader]).tolist()


def test_initial_set_size_fraction_seed_and_split():
    pool = _pool(num_train=101, initial=10)
    n = len(pool.datamodule.train_set)
    assert pool.num_train == n and pool.num_labeled == 10 and pool.num_unlabeled == n - 10
    assert set(pool.labeled_indices.tolist()).isdisjoint(pool.unlabeled_indices.tolist())
    assert pool.labeled_indices.tolist() == sorted(pool.labeled_indices.tolist())
    assert _pool(initial=10).labeled_indices.tolist() == pool.labeled_indices.tolist()  # seeded
    assert _pool(initial=10, seed=1).labeled_indices.tolist() != pool.labeled_indices.tolist()
    assert _pool(initial=0.25).num_labeled == round(0.25 * n)
    assert (pool.labeled_round[pool.labeled_indices] == 0).all()


def test_balanced_initial_set():
    pool = _pool(num_train=200, initial=22, initial_mode="balanced")
    y = dataset_targets(pool.datamodule.train_set)[pool.labeled_indices]
    counts = torch.bincount(y, minlength=4)
    assert counts.sum() == 22 and counts.max() - counts.min() <= 1


def test_bad_options_are_clear_errors():
    dm = SyntheticDataModule()
    with pytest.raises(ValueError, match="initial_labeled: got 0; allowed"):
        ActivePoolDataModule(dm, initial_labeled=0)
    with pytest.raises(ValueError, match="initial_labeled: got 1.5; allowed"):
        ActivePoolDataModule(dm, initial_labeled=1.5)
    with pytest.raises(ValueError, match="initial_mode: got 'stratified'; allowed"):
        ActivePoolDataModule(dm, initial_mode="stratified")
    with pytest.raises(ValueError, match="initial_labeled: 10000 gives 10000 samples; allowed: 1 to the pool's"):
        ActivePoolDataModule(dm, initial_labeled=10_000).setup("fit")
    with pytest.raises(ValueError, match="datamodule: give either a datamodule or train_dataset"):
        ActivePoolDataModule()
    with pytest.raises(TypeError, match="datamodule: expected a LightningDataModule, got list"):
        ActivePoolDataModule([1, 2])
    with pytest.raises(ValueError, match="batch_size: got 0; allowed"):
        ActivePoolDataModule(dm, batch_size=0)


def test_label_records_round_and_refuses_double_counting():
    pool = _pool()
    new = pool.unlabeled_indices[:5]
    pool.label(new, round=3)
    assert pool.num_labeled == 15 and (pool.labeled_round[new] == 3).all()
    with pytest.raises(ValueError, match="already labeled"):
        pool.label(new[:1], round=4)
    with pytest.raises(ValueError, match="duplicates"):
        pool.label([pool.unlabeled_indices[0]] * 2, round=4)
    with pytest.raises(IndexError):
        pool.label([10_000], round=4)
    assert pool.num_labeled == 15


def test_loaders_cover_the_right_samples_with_the_right_transforms():
    pool = _pool()
    dm = pool.datamodule
    ids = _ids(pool.train_dataloader())  # one full batch of 16 over 10 labels: all of them, 6 twice
    assert len(ids) == 16 and sorted(set(ids)) == pool.labeled_indices.tolist()
    pool.batches_per_epoch = 5  # (set by ActiveLearning(steps_per_round=5))
    assert len(pool.train_dataloader()) == 5 and len(_ids(pool.train_dataloader())) == 80
    unl = list(pool.unlabeled_dataloader())
    assert _ids(unl) == pool.unlabeled_indices.tolist()  # in index order
    i = int(pool.unlabeled_indices[3])
    assert torch.equal(unl[0][0][3], dm.train_set_eval[i][0])  # eval transforms, same sample
    assert _ids(pool.labeled_dataloader()) == pool.labeled_indices.tolist()
    assert len(pool.test_dataloader().dataset) == len(dm.test_set)  # test never in the pool
    assert pool.num_train + len(dm.val_set) == 101


def test_train_shuffle_is_seeded_by_epoch():
    s = EpochShuffleSampler(20, seed=1)
    s.set_epoch(2)
    a = list(s)
    s.set_epoch(2)
    assert list(s) == a and sorted(a) == list(range(20))
    s.set_epoch(3)
    assert list(s) != a
    cyc = list(EpochShuffleSampler(7, seed=0, num_samples=20))
    assert len(cyc) == 20 and sorted(cyc[:7]) == list(range(7)) and sorted(cyc[7:14]) == list(range(7))


def test_sampler_shards_skips_and_seeds_positions():
    """Ranks take interleaved positions of one global order (Lightning keeps it: it is a
    DistributedSampler); ``start`` skips a rank's first positions, and survives set_epoch of the same
    epoch; seeded pairs carry a seed per global position."""
    full = list(EpochShuffleSampler(7, seed=2, num_samples=24))
    ranks = [EpochShuffleSampler(7, seed=2, num_samples=24, num_replicas=2, rank=r) for r in (0, 1)]
    assert [list(r) for r in ranks] == [full[0::2], full[1::2]]
    assert isinstance(ranks[0], torch.utils.data.DistributedSampler)
    skip = EpochShuffleSampler(7, seed=2, num_samples=24, num_replicas=2, rank=1, start=4)
    skip.set_epoch(0)
    assert list(skip) == full[1::2][4:] and len(skip) == 8
    skip.set_epoch(1)
    assert skip.start == 0 and len(skip) == 12
    pairs = list(EpochShuffleSampler(7, seed=2, num_samples=24, seeded=True))
    assert [i for _, i in pairs] == full and len({s for s, _ in pairs}) == 24


def test_seeded_samples_make_augmentation_a_function_of_the_seed():
    from zerosum.datamodules.pool import SeededSamples

    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(2) + i, i

    ds = SeededSamples(Noisy())
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b = ds[(11, 1)][0], ds[(12, 1)][0]
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is untouched
    torch.manual_seed(99)
    assert torch.equal(ds[(11, 1)][0], a) and not torch.equal(a, b)


def test_training_loader_resumes_mid_epoch():
    """Lightning's stateful-dataloader protocol: state = (epoch, batches trained); a reloaded loader
    skips those batches and still reports the epoch's full length."""
    pool = _pool(num_train=150, initial=40)
    pool.batches_per_epoch = 6
    loader = pool.train_dataloader()
    ref = [b[2].tolist() for b in loader]
    loader.trained = lambda: 4
    state = loader.state_dict()
    assert state == {"epoch": 0, "batches": 4}
    again = pool.train_dataloader()
    again.load_state_dict(state)
    assert len(again) == 6 and [b[2].tolist() for b in again] == ref[4:]


def test_unlabeled_stream_pairs_labeled_and_unlabeled_batches():
    pool = _pool(num_train=150, initial=40, unlabeled_stream=True)
    loader = pool.train_dataloader()
    assert isinstance(loader, CombinedLoader)
    labeled, unlabeled = set(pool.labeled_indices.tolist()), set(pool.unlabeled_indices.tolist())
    it = iter(loader)
    batches = [b for b, *_ in it]
    assert len(batches) == -(-40 // 16)  # as many as the labeled loader: one pass in full batches
    for b in batches:
        assert set(b["labeled"][2].tolist()) <= labeled
        assert set(b["unlabeled"][2].tolist()) <= unlabeled and len(b["unlabeled"][2]) == 16


def test_state_dict_round_trip_before_and_after_setup():
    pool = _pool()
    pool.label(pool.unlabeled_indices[:7], round=1)
    state = pool.state_dict()
    fresh = synthetic_pool()
    fresh.load_state_dict(state)  # before setup: applied at setup
    fresh.setup("fit")
    assert torch.equal(fresh.labeled_round, pool.labeled_round)
    other = _pool(num_train=60)
    with pytest.raises(ValueError, match="data settings changed"):
        other.load_state_dict(state)


def test_facts_are_proxied():
    pool = synthetic_pool()
    dm = pool.datamodule
    assert (pool.num_classes, pool.in_channels, pool.image_size, pool.mean, pool.std) == (
        dm.num_classes, dm.in_channels, dm.image_size, dm.mean, dm.std)
