"""Acquisition beyond top-k: consistent MC dropout (also on nets without dropout), BatchBALD and
stochastic batch acquisition, each on a planted case with duplicated uncertain samples."""

import math

import pytest
import torch
from torch import nn

from tests.helpers.active_learning import TableModule, TablePool, TinyModule
from zerosum.query import (BALDStrategy, BatchBALDStrategy, ConsistentMCDropout, EntropyStrategy, MarginStrategy,
                           RandomStrategy, StochasticBatchStrategy, bald_score, batchbald_greedy, gumbel_top_k,
                           mc_dropout)


def test_consistent_mc_dropout_masks_own_layers_and_adds_dropout_where_there_is_none():
    """Own dropout layers: pass t uses one mask for every input (rows of equal inputs get equal
    outputs), BatchNorm stays in eval mode, the T passes differ, the hooks go away on exit. A net
    without dropout gets it on the inputs of its Linear layers, at the chosen rate."""
    net = nn.Sequential(nn.Linear(4, 64), nn.BatchNorm1d(64), nn.Dropout(0.5), nn.Linear(64, 3)).eval()
    x = torch.randn(1, 4).expand(5, 4)
    with mc_dropout(net, samples=6, seed=1) as mc:
        p = mc.probabilities(x)
        again = mc.probabilities(x[:2])
    assert p.shape == (6, 5, 3) and torch.allclose(p, p[:, :1].expand_as(p))  # consistent within a pass
    assert not torch.allclose(p[0], p[1]) and torch.allclose(again, p[:, :2])  # passes differ; masks fixed
    assert not net[1].training and not net[2].training and torch.equal(net(x), net(x))  # hooks removed
    bare = nn.Sequential(nn.Linear(4, 200), nn.ReLU(), nn.Linear(200, 3))
    mc = ConsistentMCDropout(bare, samples=40, rate=0.25)
    assert mc.added and [type(m) for m in mc.layers] == [nn.Linear, nn.Linear] and mc.rates == [0.25, 0.25]
    with mc:
        mc.probabilities(torch.randn(2, 4))
    kept = torch.stack([(m > 0).float().mean() for m in mc.masks.values()])
    assert ((kept - 0.75).abs() < 0.1).all()
    with pytest.raises(ValueError, match="dropout: Conv2d has neither dropout layers nor nn.Linear"):
        ConsistentMCDropout(nn.Conv2d(1, 1, 3), samples=2)


def test_passes_reuse_the_dropout_free_backbone_exactly_and_recompute_what_follows_a_mask():
    """The T passes run a classifier's backbone once per batch (it holds no dropout and sees the same
    input) and give exactly the probabilities of T full passes; a backbone with dropout inside runs T times."""
    from zerosum.nets import SmallCNN

    torch.manual_seed(0)
    for dropout_inside in (False, True):
        net = SmallCNN(num_classes=3, in_channels=1, width=4, dropout=0.3)
        if dropout_inside:
            net.backbone.insert(3, nn.Dropout(0.2))
        net.eval()
        calls = []
        net.backbone[0].register_forward_hook(lambda *_: calls.append(1))  # runs when the backbone computes
        x = torch.randn(5, 1, 8, 8)
        with mc_dropout(net, samples=6, seed=3) as mc:
            fast = mc.probabilities(x)
            full = []
            for t in range(6):  # the reference: T complete forward passes
                mc.t = t
                full.append(torch.softmax(net(x), 1))
        assert torch.allclose(fast, torch.stack(full), atol=1e-6) and not torch.allclose(fast[0], fast[1])
        assert len(calls) == (6 if dropout_inside else 1) + 6
        assert "forward" not in net.backbone.__dict__  # the patch is gone


def test_bald_works_on_a_network_without_dropout_and_is_reproducible():
    torch.manual_seed(0)
    module, pool = TinyModule(num_classes=3, in_dim=1), TablePool(30, [0, 1])
    a = BALDStrategy().select(None, module, pool, 6)  # TinyModule has no dropout: 0.5 added before its Linears
    assert a.tolist() == BALDStrategy().select(None, module, pool, 6).tolist()
    assert BALDStrategy().samples == 20
    with pytest.raises(ValueError, match="samples: got 1; allowed"):
        BALDStrategy(samples=1)
    with pytest.raises(ValueError, match="dropout: got 1.5; allowed"):
        BALDStrategy(dropout=1.5)


def _planted_committee(n_other=20, copies=4, t=8):
    """``(N, T, C)`` probabilities of T=8 networks. Item 0 and its duplicates 1..copies split the
    networks 4|4 (maximal BALD, log 2); two more items split them along other axes, a little less
    sharply (a little less BALD); the rest are confident."""
    probs = torch.full((copies + 3 + n_other, t, 2), 0.5)
    w = torch.arange(t)

    def split(side, q):
        q = torch.full((t,), q)
        return torch.stack([torch.where(side, q, 1 - q), torch.where(side, 1 - q, q)], -1)

    probs[: copies + 1] = split(w < 4, 1.0 - 1e-6)
    probs[copies + 1] = split(w % 4 < 2, 0.97)
    probs[copies + 2] = split(w % 2 == 0, 0.96)
    probs[copies + 3:] = split(torch.ones(t, dtype=torch.bool), 0.99)
    return probs


def test_batchbald_does_not_pick_duplicates_together_top_k_bald_does():
    probs = _planted_committee()
    bald = bald_score(probs.transpose(0, 1))
    assert sorted(torch.sort(bald, descending=True, stable=True).indices[:3].tolist()) == [0, 1, 2]  # duplicates
    picks, gains = batchbald_greedy(probs, 3)
    assert picks.tolist() == [0, 5, 6]  # one copy, then the two other axes
    assert float(gains[0]) == pytest.approx(math.log(2), abs=1e-4) and (gains > 0.5).all()
    assert float(batchbald_greedy(probs[:2], 2)[1][1]) < 1e-4  # a duplicate adds nothing once its twin is in
    # the sampled estimate (fewer configurations than C^n) finds the same batch here
    assert batchbald_greedy(probs, 3, num_configurations=2, seed=3)[0].tolist() == [0, 5, 6]


class Committee(nn.Module):
    """``module(x)`` = log of the planted probabilities of pool item ``x`` under the network selected by
    the dropout mask on its single input unit (mask value ``t + 1`` selects network ``t``)."""

    def __init__(self, probs):
        super().__init__()
        self.register_buffer("probs", probs)
        self.gate = nn.Linear(1, 1)

    def forward(self, x):
        return self.probs[x[:, 0].long(), self.t].log() + 0 * self.gate.weight.sum()


def test_batchbald_and_bald_strategies_map_pool_indices(monkeypatch):
    """Through the strategies (pool loader, MC passes, pool indices after a labeled sample): BatchBALD
    picks one duplicate and the two other axes, top-k BALD the duplicates."""
    probs = _planted_committee()
    module = Committee(probs)

    def passes(self, x):  # pass t reads network t of the planted committee
        out = []
        for t in range(self.samples):
            module.t = t
            out.append(torch.softmax(module(x), 1))
        return torch.stack(out)

    monkeypatch.setattr(ConsistentMCDropout, "probabilities", passes)
    pool = TablePool(len(probs), [3])  # pool index 3 labeled: positions and indices differ after it
    assert BatchBALDStrategy(samples=8).select(None, module, pool, 3).tolist() == [0, 5, 6]
    assert sorted(BALDStrategy(samples=8).select(None, module, pool, 3).tolist()) == [0, 1, 2]


def test_stochastic_acquisition_samples_in_proportion_and_spreads_over_duplicates():
    """Gumbel-top-k draws item i first with probability p_i; with 20 copies of the top item among 220
    near-equals, top-k takes all copies, stochastic acquisition about their share."""
    w = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    first = torch.cat([gumbel_top_k(w.log(), 1, g) for _ in range(4000)])
    assert torch.allclose(torch.bincount(first, minlength=4).double() / 4000, w, atol=0.03)
    n = 220
    logits = torch.zeros(n, 2)
    logits[:, 0] = torch.linspace(3.0, 2.0, n)
    logits[:20, 0] = 1.9  # 20 duplicates of the most uncertain sample
    module, pool = TableModule(logits), TablePool(n, [])
    assert set(EntropyStrategy().select(None, module, pool, 20).tolist()) == set(range(20))
    # power / softmax on nearly equal entropies: close to uniform, expected 20 x 20/220 < 2 copies;
    # softrank (1/rank) puts most of its mass on the top ranks, yet not all 20 draws
    for mode, most in (("power", 6), ("softmax", 6), ("softrank", 15)):
        picked = StochasticBatchStrategy(EntropyStrategy(), mode=mode, seed=1).select(None, module, pool, 20)
        dup = int((picked < 20).sum())
        assert len(set(picked.tolist())) == 20 and dup <= most, (mode, dup)
        again = StochasticBatchStrategy(EntropyStrategy(), mode=mode, seed=1).select(None, module, pool, 20)
        assert torch.equal(picked, again)  # seeded: the same on every rank and after a resume
    cold = StochasticBatchStrategy(EntropyStrategy(), mode="softmax", beta=1e6).select(None, module, pool, 20)
    assert set(cold.tolist()) == set(range(20))  # a very cold distribution is top-k
    with pytest.raises(ValueError, match="mode: 'power' needs non-negative scores"):
        StochasticBatchStrategy(MarginStrategy(), mode="power").select(None, module, pool, 3)
    with pytest.raises(TypeError, match="strategy: got RandomStrategy; allowed: a ScoringStrategy"):
        StochasticBatchStrategy(RandomStrategy())
    with pytest.raises(ValueError, match="mode: got 'rank'; allowed"):
        StochasticBatchStrategy(EntropyStrategy(), mode="rank")
