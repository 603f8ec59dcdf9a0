"""Attacks: plain functions usable inside or outside Lightning, in [0, 1] pixel space."""

from zerosum.attacks.pgd import PGD, pgd, random_delta

__all__ = ["PGD", "pgd", "random_delta"]
