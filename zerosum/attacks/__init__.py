"""Attacks: plain functions usable inside or outside Lightning, in [0, 1] pixel space."""

from zerosum.attacks.pgd import PGD, full_float, full_precision, pgd, random_delta, refuse_degenerate_attack

__all__ = ["PGD", "full_float", "full_precision", "pgd", "random_delta", "refuse_degenerate_attack"]
