"""Every strategy against a brute-force answer on fixed logits / features, plus the shared engine."""

import math

import pytest
import torch

from tests.helpers.active_learning import NoFeaturesModule, TableModule, TablePool, TinyModule
from zerosum.query import (
    BALDStrategy,
    BatchBALDStrategy,
    CoresetStrategy,
    EntropyStrategy,
    LeastConfidenceStrategy,
    MarginStrategy,
    MaxEntropyStrategy,
    RandomStrategy,
    StochasticBatchStrategy,
    bald_score,
    k_center_greedy,
    max_entropy_score,
    score_pool,
)


def _probs(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


BRUTE = {
    EntropyStrategy: lambda row: -sum(p * math.log(p) for p in _probs(row)),
    LeastConfidenceStrategy: lambda row: 1 - max(_probs(row)),
    MarginStrategy: lambda row: -(sorted(_probs(row))[-1] - sorted(_probs(row))[-2]),
}


@pytest.mark.parametrize("cls", list(BRUTE))
def test_scoring_strategies_equal_brute_force_top_k(cls):
    torch.manual_seed(0)
    n, labeled = 50, [3, 10, 11, 40]
    logits = torch.randn(n, 5) * 2
    module, pool = TableModule(logits), TablePool(n, labeled)
    picked = cls().select(None, module, pool, 9)
    scores = {i: BRUTE[cls](logits[i].tolist()) for i in range(n) if i not in labeled}
    expected = sorted(scores, key=lambda i: -scores[i])[:9]
    assert picked.tolist() == expected  # same indices, in score order
    assert not set(picked.tolist()) & set(labeled)


def test_planted_uncertain_set_is_selected():
    """Confident everywhere except on a planted set: entropy / least-confidence / margin find it."""
    n = 60
    planted = [4, 17, 18, 33, 59]
    logits = torch.zeros(n, 4)
    logits[torch.arange(n), torch.arange(n) % 4] = 8.0  # confident
    logits[planted] = torch.tensor([0.1, 0.0, 0.05, 0.0])  # nearly uniform
    for cls in BRUTE:
        picked = cls().select(None, TableModule(logits), TablePool(n, [0, 1]), len(planted))
        assert sorted(picked.tolist()) == planted, cls.__name__


def _naive_k_center(u, lab, k):
    chosen, centres = [], [c for c in lab]
    for _ in range(k):
        best, best_d = None, -1.0
        for i, x in enumerate(u):
            if i in chosen:
                continue
            d = min((float(((x - c) ** 2).sum()) for c in centres), default=float("inf"))
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
        centres.append(u[best])
    return chosen


@pytest.mark.parametrize("n_lab", [0, 1, 6])
def test_k_center_greedy_equals_naive(n_lab):
    g = torch.Generator().manual_seed(n_lab)
    u, lab = torch.randn(40, 3, generator=g), torch.randn(n_lab, 3, generator=g)
    picks = k_center_greedy(u, lab, 8, chunk=4)
    expected = _naive_k_center(u, lab, 8)
    if n_lab == 0:  # the convention: first pick is candidate 0
        assert picks[0] == 0
        expected = [0] + _naive_k_center(u, u[:1], 7)
    assert picks.tolist() == expected


def test_coreset_strategy_uses_module_features_and_maps_pool_indices():
    g = torch.Generator().manual_seed(1)
    n, labeled = 30, [0, 5, 9]
    feats = torch.randn(n, 4, generator=g)
    picked = CoresetStrategy().select(None, TableModule(torch.zeros(n, 3), feats), TablePool(n, labeled), 5)
    unl = [i for i in range(n) if i not in labeled]
    expected = [unl[j] for j in _naive_k_center(feats[unl], feats[labeled], 5)]
    assert picked.tolist() == expected


def test_coreset_without_features_is_a_clear_error():
    with pytest.raises(AttributeError, match="exposes no penultimate features"):
        CoresetStrategy().select(None, NoFeaturesModule(), TablePool(10, [0]), 2)


def test_bald_and_max_entropy_scores_match_definitions():
    probs = torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]])  # (T=2, B=2, C=2)
    h = lambda p: -sum(v * math.log(v) for v in p)  # noqa: E731
    # sample 0: the passes disagree -> high BALD; sample 1: agree on uniform -> BALD 0, entropy max
    assert bald_score(probs)[0].item() == pytest.approx(h([0.5, 0.5]) - h([0.9, 0.1]), abs=1e-5)
    assert bald_score(probs)[1].item() == pytest.approx(0.0, abs=1e-6)
    assert max_entropy_score(probs)[1].item() == pytest.approx(math.log(2), abs=1e-6)


def test_bald_prefers_samples_whose_dropout_passes_disagree():
    """Inputs with a large component on the dropout path give disagreeing passes; zero inputs give
    identical (deterministic) passes: BALD ranks the former first."""
    torch.manual_seed(0)
    module = TinyModule(num_classes=3, in_dim=4, dropout=0.5)
    n = 24
    x = torch.zeros(n, 4)
    planted = [2, 7, 20]
    x[planted] = torch.randn(3, 4) * 5

    class Pool(TablePool):
        def unlabeled_dataloader(self):
            idx = self.unlabeled_indices
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[idx], torch.zeros(len(idx)), idx),
                                               batch_size=5)

    module.body[1].bias.data.zero_()
    picked = BALDStrategy(samples=20).select(None, module, Pool(n, [0]), 3)
    assert sorted(picked.tolist()) == planted
    assert MaxEntropyStrategy(samples=2).select(None, module, Pool(n, [0]), 3).numel() == 3


def test_score_pool_eval_mode_no_grad_restores_train_mode_and_leaves_inference_mode():
    seen = []

    class Probe(TinyModule):
        def forward(self, x):
            seen.append((self.training, self.drop.training, torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
            return super().forward(x)

    module = Probe(in_dim=1, dropout=0.2).train()
    pool = TablePool(20, [0])
    with torch.inference_mode():  # as inside Lightning's validation loop
        scores, idx = score_pool(None, module, pool.unlabeled_dataloader(), lambda m, x: m(x).sum(1))
    assert seen and all(s == (False, False, False, False) for s in seen)
    assert module.training and module.drop.training
    assert not scores.is_inference() and idx.tolist() == list(range(1, 20))


def test_random_strategy_is_seeded_and_draws_unlabeled():
    pool = TablePool(40, range(10))
    a = RandomStrategy(seed=3).select(None, None, pool, 12)
    assert a.tolist() == RandomStrategy(seed=3).select(None, None, pool, 12).tolist()
    assert a.tolist() != RandomStrategy(seed=4).select(None, None, pool, 12).tolist()
    assert len(set(a.tolist())) == 12 and min(a.tolist()) >= 10


@pytest.mark.parametrize("budget,err,msg", [
    (0, ValueError, "must be positive"),
    (-3, ValueError, "must be positive"),
    (31, ValueError, "larger than the remaining unlabeled pool"),
    (2.5, TypeError, "must be an int"),
])
@pytest.mark.parametrize("cls", [RandomStrategy, EntropyStrategy, LeastConfidenceStrategy, MarginStrategy,
                                 CoresetStrategy, BALDStrategy, MaxEntropyStrategy, BatchBALDStrategy,
                                 lambda: StochasticBatchStrategy(EntropyStrategy())])
def test_bad_budgets_are_clear_errors(cls, budget, err, msg):
    module = TableModule(torch.randn(40, 3), torch.randn(40, 2))
    with pytest.raises(err, match=msg):
        cls().select(None, module, TablePool(40, range(10)), budget)
