"""Active-learning query strategies: one interface, :class:`QueryStrategy.select`."""

from zerosum.query.base import QueryStrategy, check_budget, top_k
from zerosum.query.coreset import CoresetStrategy, k_center_greedy
from zerosum.query.mc_dropout import BALDStrategy, MaxEntropyStrategy, bald_score, max_entropy_score, mc_dropout
from zerosum.query.scoring import ScoringStrategy, module_features, score_pool
from zerosum.query.uncertainty import (
    EntropyStrategy,
    LeastConfidenceStrategy,
    MarginStrategy,
    RandomStrategy,
    entropy_score,
    least_confidence_score,
    margin_score,
)

#: name -> strategy class, for :func:`build_strategy` (other strategies add themselves here).
STRATEGIES = {
    "random": RandomStrategy,
    "entropy": EntropyStrategy,
    "least_confidence": LeastConfidenceStrategy,
    "margin": MarginStrategy,
    "coreset": CoresetStrategy,
    "bald": BALDStrategy,
    "max_entropy": MaxEntropyStrategy,
}


def build_strategy(name: str, **kwargs) -> QueryStrategy:
    """A strategy by name (a key of :data:`STRATEGIES`)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown query strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](**kwargs)


__all__ = [
    "BALDStrategy", "CoresetStrategy", "EntropyStrategy", "LeastConfidenceStrategy", "MarginStrategy",
    "MaxEntropyStrategy", "QueryStrategy", "RandomStrategy", "STRATEGIES", "ScoringStrategy", "bald_score",
    "build_strategy", "check_budget", "entropy_score", "k_center_greedy", "least_confidence_score",
    "margin_score", "max_entropy_score", "mc_dropout", "module_features", "score_pool", "top_k",
]

from zerosum.query.sral import SRALStrategy  # noqa: E402

STRATEGIES["sral"] = SRALStrategy
__all__ += ["SRALStrategy"]

from zerosum.query.vaal import VAALQuery  # noqa: E402

STRATEGIES["vaal"] = VAALQuery
__all__ += ["VAALQuery"]
