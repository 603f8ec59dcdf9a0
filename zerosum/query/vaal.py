"""VAAL's sampling strategy (Sinha et al., ICCV 2019, Algorithm 2): label the ``budget`` unlabeled
samples with the lowest ``D(mu(x))``, the ones the discriminator is most sure are *unlabeled*, i.e.
least represented by the labeled pool in the VAE's latent space.

Implemented as a :class:`~zerosum.query.scoring.ScoringStrategy` with score ``-D(mu(x))`` (higher =
label first), so the pool is scored in eval mode (the VAE uses ``mu`` and its BatchNorm running
statistics), sharded over ranks and gathered; ties go to the smaller pool position.

Whether the game worked shows in one number, measured at every query: the discriminator's **AUROC**,
labeled (positive) vs unlabeled samples, of ``D(mu(x))`` on the whole pool (evaluation transforms,
eval mode). 0.5 means D cannot tell the pools apart and the query is a random ranking in disguise;
the closer to 1, the more the query picks what the labeled set does not cover. It is
:attr:`VAALQuery.last_auroc` and the round metric ``vaal_d_auroc`` (logged by
:class:`~zerosum.callbacks.ActiveLearning` as ``active/vaal_d_auroc``).

Departures from the official code (``sampler.py``): the pool is scored with the **evaluation**
transforms and modules in eval mode (the official code scores augmented images with the VAE's
BatchNorm in training mode, so each unlabeled batch is normalised by its own statistics), and
there is no extra sampling step after the last round (its ``main.py`` queries once more after the
final training).
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch import nn

from zerosum.query.base import top_k
from zerosum.query.scoring import ScoringStrategy, score_pool


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Area under the ROC curve of scores where ``positive`` should rank higher:
    ``P(s_pos > s_neg) + P(s_pos = s_neg) / 2`` (Mann-Whitney U over all pairs, ties averaged);
    NaN when either side is empty."""
    pos, neg = positive.detach().double().flatten().cpu(), negative.detach().double().flatten().cpu()
    if not len(pos) or not len(neg):
        return float("nan")
    values, inverse = torch.cat([pos, neg]).unique(return_inverse=True)  # sorted distinct values
    counts = torch.bincount(inverse, minlength=len(values)).double()
    mid_rank = counts.cumsum(0) - (counts - 1) / 2  # 1-based average rank of each distinct value
    u = mid_rank[inverse[: len(pos)]].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


class VAALQuery(ScoringStrategy):
    """Select ``argmin_budget D(mu(x_U))``. The module must expose ``labeled_probability(x)`` (as the
    module :class:`zerosum.modules.VAAL` does) or ``vae`` and ``discriminator`` attributes.

    Args:
        measure_auroc: also score the labeled set and record D's labeled-vs-unlabeled AUROC
            (``vaal_d_auroc``); costs one pass over the labeled set.
    """

    def __init__(self, measure_auroc: bool = True):
        self.measure_auroc = bool(measure_auroc)
        self.last_auroc: Optional[float] = None

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return -labeled_probability(module, x)

    def select(self, trainer: Optional[L.Trainer], module: nn.Module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        scores, indices = self.score(trainer, module, pool)
        if self.measure_auroc and callable(getattr(pool, "labeled_dataloader", None)):
            labeled, _ = score_pool(trainer, module, pool.labeled_dataloader(), self.score_batch)
            self.last_auroc = auroc(-labeled, -scores)  # D(mu): labeled is the positive class
        return top_k(scores, indices, budget)

    def round_metrics(self) -> dict[str, float]:
        """``{"vaal_d_auroc": ...}`` of the last query (empty before the first)."""
        return {} if self.last_auroc is None else {"vaal_d_auroc": self.last_auroc}


def labeled_probability(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``D(mu(x))`` from a VAAL-like module, with a clear error for any other module."""
    fn = getattr(module, "labeled_probability", None)
    if callable(fn):
        return fn(x)
    vae, disc = getattr(module, "vae", None), getattr(module, "discriminator", None)
    if vae is None or disc is None:
        raise TypeError(
            f"VAALQuery needs a VAAL module (zerosum.modules.VAAL: a `vae` and a `discriminator`), got "
            f"{type(module).__name__}; use a model-agnostic strategy (random, entropy) for other modules")
    mu, _ = vae.encode(x)
    return disc(mu)
