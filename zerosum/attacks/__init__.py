"""Attacks: plain functions usable inside or outside Lightning, in [0, 1] pixel space."""

from zerosum.attacks.pgd import normalized_step, pgd, project, random_delta

__all__ = ["normalized_step", "pgd", "project", "random_delta"]
