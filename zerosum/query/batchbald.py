"""BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019): a batch whose labels are jointly informative.

Top-k BALD scores every sample alone, so a batch of near-duplicates that are each informative is
picked whole although their labels tell the same thing. BatchBALD greedily maximises the mutual
information of the *joint* labels with the model, ``a({x_1..x_n}) = I(y_1..y_n; w)`` (their Eq. 2);
the gain of adding ``x`` to the batch (Algorithm 1) is

    I(y_x; w | y_batch) = H(y_x | y_batch) - E_w H(y_x | w)

with ``w`` the ``T`` consistent MC-dropout networks (:mod:`zerosum.query.mc_dropout`), each equally
likely a priori. ``H(y_x | y_batch)`` is an average over configurations ``y`` of the batch's labels,
each with its posterior over the ``T`` networks, ``P(w_t | y) ∝ P(y | w_t)``: exactly (all ``C^n``
configurations) while there are at most ``num_configurations`` of them, then over that many
configurations sampled from the joint predictive (their Sec. 3.2). The posteriors are kept normalised,
so long batches do not underflow.
"""

from __future__ import annotations

from typing import Optional

import torch

from zerosum.query.mc_dropout import MCDropoutStrategy, _entropy


def batchbald_greedy(probs: torch.Tensor, k: int, num_configurations: int = 1000, seed: int = 0,
                     chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (into ``probs``) of ``k`` greedy BatchBALD picks and the gain of each.

    Args:
        probs: ``(N, T, C)`` consistent MC-dropout probabilities of the candidates.
        k: batch size.
        num_configurations: exact joint entropies up to this many label configurations, sampled beyond.
        seed: seed of the configuration samples.
        chunk: candidates per block (memory ``chunk x configurations x C``).
    """
    n, t, c = probs.shape
    if not 0 < k <= n:
        raise ValueError(f"k: got {k}; allowed: 1 to the {n} candidates")
    probs = probs.double()
    cond = _entropy(probs).mean(1)  # E_w H(y | w), (N,)
    weight = torch.ones(1, dtype=probs.dtype)  # P(configuration), (K,)
    post = torch.full((1, t), 1.0 / t, dtype=probs.dtype)  # P(w_t | configuration), (K, T)
    taken, sampled = torch.zeros(n, dtype=torch.bool), False
    g = torch.Generator().manual_seed(seed)
    picks, gains = [], []
    for _ in range(k):
        gain = torch.full((n,), float("-inf"), dtype=probs.dtype)
        for s in range(0, n, chunk):
            q = torch.einsum("kt,ntc->nkc", post, probs[s:s + chunk])  # P(y_x | configuration)
            gain[s:s + chunk] = (_entropy(q) * weight).sum(1) - cond[s:s + chunk]
        gain[taken] = float("-inf")
        i = int(torch.argmax(gain))
        picks.append(i)
        gains.append(float(gain[i]))
        taken[i] = True
        q = post @ probs[i]  # (K, C)
        if not sampled and weight.numel() * c <= num_configurations:  # exact: every configuration x every label
            weight = (weight[:, None] * q).reshape(-1)
            post = (post[:, None, :] * probs[i].T[None, :, :]).reshape(-1, t)
        else:  # sampled: configurations drawn from the joint predictive, then extended by one drawn label each
            if not sampled:
                draw = torch.multinomial(weight.float(), num_configurations, replacement=True, generator=g)
                post, q, sampled = post[draw], q[draw], True
                weight = torch.full((num_configurations,), 1.0 / num_configurations, dtype=probs.dtype)
            label = torch.multinomial(q.float().clamp_min(0), 1, generator=g).squeeze(1)
            post = post * probs[i][:, label].T
        post = post / post.sum(1, keepdim=True).clamp_min(1e-300)
    return torch.tensor(picks, dtype=torch.long), torch.tensor(gains)


class BatchBALDStrategy(MCDropoutStrategy):
    """Label a batch of maximal joint mutual information with the model (greedy BatchBALD).

    Args:
        samples: MC-dropout passes ``T`` (>= 2).
        dropout: dropout rate of the passes (``None``: the network's own; 0.5 added where it has none).
        seed: seed of the dropout masks and of the configuration samples.
        num_configurations: label configurations of the batch kept exactly, then sampled (cost per pick
            is ``pool x configurations x T x C``).
        candidates: score only this many top-BALD samples (``None``: the whole pool).
    """

    def __init__(self, samples: int = 20, dropout: Optional[float] = None, seed: int = 0,
                 num_configurations: int = 1000, candidates: Optional[int] = None):
        super().__init__(samples, dropout, seed)
        if num_configurations < 1:
            raise ValueError(f"num_configurations: got {num_configurations}; allowed: an int >= 1")
        if candidates is not None and candidates < 1:
            raise ValueError(f"candidates: got {candidates}; allowed: an int >= 1, or None")
        self.num_configurations, self.candidates = int(num_configurations), candidates

    def select(self, trainer, module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        probs, indices = self.pool_probabilities(trainer, module, pool)
        bald = _entropy(probs.mean(1)) - _entropy(probs).mean(1)
        if self.candidates is not None and self.candidates < len(indices):
            keep = torch.sort(bald, descending=True, stable=True).indices[: max(self.candidates, budget)]
            probs, indices, bald = probs[keep], indices[keep], bald[keep]
        seed = self.seed * 1_000_003 + pool.num_labeled
        picks, gains = batchbald_greedy(probs, budget, self.num_configurations, seed)
        picked = indices[picks]
        self.record_scores(bald, indices, picked)
        self._last_metrics["batch_gain_sum"] = float(gains.sum())
        return picked
