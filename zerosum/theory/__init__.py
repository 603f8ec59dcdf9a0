"""Exact, checkable theory behind the games (Ilyas et al. 2019, section 4: Gaussian robust MLE)."""

from zerosum.theory import gaussian

__all__ = ["gaussian"]
