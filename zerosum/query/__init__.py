"""Active-learning query strategies: one interface, :class:`QueryStrategy.select`."""

from zerosum.query.base import QueryStrategy, top_k
from zerosum.query.batchbald import BatchBALDStrategy, batchbald_greedy
from zerosum.query.coreset import CoresetStrategy, k_center_greedy
from zerosum.query.mc_dropout import (BALDStrategy, ConsistentMCDropout, MaxEntropyStrategy, MCDropoutStrategy,
                                      bald_score, max_entropy_score, mc_dropout)
from zerosum.query.scoring import ScoringStrategy, module_features, score_pool
from zerosum.query.sral import SRALStrategy
from zerosum.query.stochastic import StochasticBatchStrategy, gumbel_top_k, stochastic_log_weights
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
    "BALDStrategy", "BatchBALDStrategy", "ConsistentMCDropout", "CoresetStrategy", "EntropyStrategy",
    "LeastConfidenceStrategy", "MCDropoutStrategy", "MarginStrategy", "MaxEntropyStrategy", "QueryStrategy",
    "RandomStrategy", "SRALStrategy", "ScoringStrategy", "StochasticBatchStrategy", "VAALQuery", "bald_score",
    "batchbald_greedy", "entropy_score", "gumbel_top_k", "k_center_greedy", "least_confidence_score", "margin_score",
    "max_entropy_score", "mc_dropout", "module_features", "score_pool", "stochastic_log_weights", "top_k",
]
