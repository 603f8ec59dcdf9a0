import math

import pytest
import torch
from torch import nn

from zerosum.datamodules import ActivePoolDataModule, SyntheticDataModule
from zerosum.modules import VAAL, Classifier
from zerosum.query import VAALQuery


class PlantedD(nn.Module):
    """A stand-in VAAL whose ``D(mu(x))`` is a fixed function of the image: its mean pixel."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def labeled_probability(self, x):
        return torch.sigmoid(x.flatten(1).mean(1))


def pool_with(augment: bool, labeled: int = 40):
    dm = SyntheticDataModule(num_train=120, num_classes=4, batch_size=16, eval_batch_size=32, val_size=0,
                             augment=augment)
    pool = ActivePoolDataModule(dm, initial_labeled=labeled, seed=3)
    pool.setup()
    return pool


def brute_force_d(pool, fn):
    """D of every unlabeled sample, read one by one with evaluation transforms."""
    ds = pool.datamodule.train_set_eval
    idx = pool.unlabeled_indices
    return idx, torch.stack([fn(ds[int(i)][0][None])[0] for i in idx])


def test_selection_is_argmin_k_of_d_and_never_a_labeled_index():
    pool = pool_with(augment=False)
    module = PlantedD()
    idx, d = brute_force_d(pool, module.labeled_probability)
    expected = idx[torch.sort(d, stable=True).indices[:25]]
    chosen = VAALQuery().select(None, module, pool, 25)
    assert torch.equal(chosen, expected)
    everything = VAALQuery().select(None, module, pool, pool.num_unlabeled)
    assert sorted(everything.tolist()) == pool.unlabeled_indices.tolist()  # never a labeled index


def test_real_module_scores_with_eval_transforms_in_eval_mode():
    torch.manual_seed(0)
    pool = pool_with(augment=True)  # random crops in training transforms: scoring must not see them
    model = VAAL(num_classes=4, in_channels=1, image_size=8, net="small_cnn", net_args={"width": 4}, latent_dim=4,
                 vae_base_width=4, vae_num_blocks=2, disc_hidden_dim=8, disc_num_layers=2)
    with torch.no_grad():  # non-trivial BatchNorm running statistics: train-mode scoring would differ
        for m in model.vae.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    model.train()
    first = VAALQuery().select(None, model, pool, 10)
    assert model.training and model.vae.training  # flags restored
    model.eval()
    idx, d = brute_force_d(pool, model.labeled_probability)
    assert torch.equal(first, idx[torch.sort(d, stable=True).indices[:10]])


def test_refuses_non_vaal_modules():
    pool = pool_with(augment=False)
    with pytest.raises(TypeError, match="VAAL module"):
        VAALQuery().select(None, Classifier(num_classes=4, in_channels=1, net_args={"width": 4}), pool, 5)


def test_auroc_equals_the_pairwise_brute_force_with_ties():
    from zerosum.query.vaal import auroc

    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randint(0, 6, (37,), generator=g).float(), torch.randint(0, 5, (23,), generator=g).float()
    brute = ((pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()).mean()
    assert abs(auroc(pos, neg) - float(brute)) < 1e-9
    assert auroc(torch.ones(3), torch.zeros(4)) == 1.0 and auroc(torch.zeros(3), torch.ones(4)) == 0.0
    assert auroc(torch.ones(3), torch.ones(4)) == 0.5
    assert math.isnan(auroc(torch.ones(3), torch.zeros(0)))


def test_auroc_is_measured_on_the_labeled_and_unlabeled_pool():
    pool = pool_with(augment=False)
    module = PlantedD()
    query = VAALQuery()
    query.select(None, module, pool, 5)
    ds = pool.datamodule.train_set_eval
    d = torch.stack([module.labeled_probability(ds[i][0][None])[0] for i in range(len(ds))])
    lab = pool.labeled_round >= 0
    brute = ((d[lab][:, None] > d[~lab][None]).float() + 0.5 * (d[lab][:, None] == d[~lab][None]).float()).mean()
    assert abs(query.round_metrics()["vaal_d_auroc"] - float(brute)) < 1e-6
    assert VAALQuery(measure_auroc=False).round_metrics() == {}
