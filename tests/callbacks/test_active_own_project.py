"""Active learning in a user's own project (issue 13's case): an own LightningDataModule (digits in a
``TensorDataset``, ``random_split``) and an own LightningModule that unpacks ``x, y = batch``. The
picks must equal a brute-force top-k over the true unlabeled pool, computed from the raw tensors."""

import lightning as L
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.helpers.own_digits import DigitsTensors, PlainMLP
from zerosum.callbacks import ActiveLearning
from zerosum.datamodules import ActivePoolDataModule
from zerosum.query import CoresetStrategy, EntropyStrategy, QueryStrategy


class Recording(QueryStrategy):
    """Delegates to ``inner`` and keeps, per query, the weights it saw and the picks in order."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def settings(self):
        return self.inner.settings()

    def select(self, trainer, module, pool, budget):
        picked = self.inner.select(trainer, module, pool, budget)
        self.seen.append(({k: v.clone() for k, v in module.state_dict().items()}, pool.labeled_round.clone(), picked))
        return picked


def _brute_force(kind, dm, weights, labeled_round, k):
    """The answer from the raw tensors: pool index i is the i-th sample of the user's train split."""
    module = PlainMLP()
    module.load_state_dict(weights)
    module.eval()
    rows = torch.as_tensor(dm.train_ds.indices)
    x = dm.x[rows]
    unl = (labeled_round < 0).nonzero().squeeze(1)
    lab = (labeled_round >= 0).nonzero().squeeze(1)
    with torch.no_grad():
        if kind == "entropy":
            p = torch.softmax(module(x[unl]), 1)
            score = -(p * p.clamp_min(1e-12).log()).sum(1)
            return unl[torch.sort(score, descending=True, stable=True).indices[:k]].tolist()
        feats = module.features(x)
        centres, picks = feats[lab], []
        d = torch.cdist(feats[unl].double(), centres.double()).min(1).values  # distance to the nearest centre
        for _ in range(k):  # k-center greedy (Sener & Savarese): the farthest sample becomes a centre
            j = int(torch.argmax(d))
            picks.append(j)
            d = torch.minimum(d, torch.cdist(feats[unl].double(), feats[unl][j:j + 1].double())[:, 0])
        return unl[torch.tensor(picks)].tolist()


@pytest.mark.parametrize("kind", ["entropy", "coreset"])
def test_own_datamodule_and_plain_module_get_the_true_top_k(tmp_path, kind):
    L.seed_everything(0)
    dm = DigitsTensors()
    pool = ActivePoolDataModule(dm, initial_labeled=20, seed=0)
    strategy = Recording(EntropyStrategy() if kind == "entropy" else CoresetStrategy())
    al = ActiveLearning(strategy, rounds=2, budget=13, steps_per_round=25, output_dir=str(tmp_path / "out"))
    trainer = L.Trainer(callbacks=[al], accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(PlainMLP(), pool)
    assert pool.num_labeled == 20 + 13 and pool.batch_size == 32
    assert min(h["test_acc"] for h in al.history) > 0.5, al.history  # the plain module trained on the pool
    for r, (weights, labeled_round, picked) in enumerate(strategy.seen, start=1):
        expected = _brute_force(kind, dm, weights, labeled_round, 13)
        assert picked.tolist() == expected  # same samples, same order
        assert sorted(expected) == (pool.labeled_round == r).nonzero().squeeze(1).tolist()


def test_datasets_given_directly_and_missing_parts_are_named():
    dm = DigitsTensors()
    dm.setup()
    pool = ActivePoolDataModule(train_dataset=dm.train_ds, val_dataset=dm.val_ds, initial_labeled=10, batch_size=8,
                                eval_batch_size=256)
    pool.setup("fit")
    assert pool.num_train == 1200 and pool.batch_size == 8 and len(next(iter(pool.val_dataloader()))[0]) == 197
    x, y, idx = next(iter(pool.unlabeled_dataloader()))
    assert torch.equal(x[3], dm.train_ds[int(idx[3])][0])
    with pytest.raises(ValueError, match="test_dataset: ActivePoolDataModule was given no test_dataset"):
        pool.test_dataloader()

    class NoTrainLoader(L.LightningDataModule):
        pass

    with pytest.raises(TypeError, match="datamodule: NoTrainLoader has neither `train_set` nor a working"):
        ActivePoolDataModule(NoTrainLoader(), initial_labeled=2).setup("fit")

    class Unlabeled(DigitsTensors):
        def setup(self, stage=None):
            super().setup(stage)
            self.train_set = TensorDataset(self.x[:50])  # samples (x,) only

    bad = ActivePoolDataModule(Unlabeled(), initial_labeled=2)
    bad.setup("fit")
    with pytest.raises(TypeError, match="samples must be \\(x, y, ...\\) tuples"):
        next(iter(bad.unlabeled_dataloader()))
    no_test = ActiveLearning(EntropyStrategy(), rounds=2, budget=5, steps_per_round=2)
    trainer = L.Trainer(callbacks=[no_test], accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="eval_split: the datamodule gives no test loader"):
        trainer.fit(PlainMLP(), pool)
