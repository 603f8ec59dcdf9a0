"""Active-learning query strategies: one interface, :class:`QueryStrategy.select`."""

from zerosum.query.base import QueryStrategy, top_k
from zerosum.query.coreset import CoresetStrategy, k_center_greedy
from zerosum.query.mc_dropout import BALDStrategy, MaxEntropyStrategy, bald_score, max_entropy_score, mc_dropout
from zerosum.query.scoring import ScoringStrategy, module_features, score_pool
from zerosum.query.sral import SRALStrategy
from zerosum.query.uncertainty import (
    EntropyStrategy,
    LeastConfidenceStrategy,
    MarginStrategy,
    RandomStrategy,
    entropy_score,
    least_confidence_score,
    margin_score,
)
from zerosum.query.vaal import VAALQuery

__all__ = [
    "BALDStrategy", "CoresetStrategy", "EntropyStrategy", "LeastConfidenceStrategy", "MarginStrategy",
    "MaxEntropyStrategy", "QueryStrategy", "RandomStrategy", "SRALStrategy", "ScoringStrategy", "VAALQuery",
    "bald_score", "entropy_score", "k_center_greedy", "least_confidence_score", "margin_score",
    "max_entropy_score", "mc_dropout", "module_features", "score_pool", "top_k",
]
