"""Attacks: plain functions usable inside or outside Lightning, in [0, 1] pixel space."""

from zerosum.attacks.pgd import PGD, normalized_step, pgd, project, random_delta

__all__ = ["PGD", "normalized_step", "pgd", "project", "random_delta"]
