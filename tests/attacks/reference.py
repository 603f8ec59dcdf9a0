"""Textbook PGD pieces (Madry et al., Eq. 2.1), written out plainly: the reference the fused
:func:`zerosum.attacks.pgd` is checked against."""

import torch
from torch import Tensor


def _flat_norm(t: Tensor) -> Tensor:
    """Per-sample L2 norm of ``t`` (B, ...) shaped (B, 1, ..., 1)."""
    return t.flatten(1).norm(dim=1).view((-1,) + (1,) * (t.dim() - 1))


def project(delta: Tensor, eps: Tensor, norm: str) -> Tensor:
    """Project ``delta`` onto the ``norm`` ball of radius ``eps`` (per sample)."""
    if norm == "linf":
        return torch.clamp(delta, -eps, eps)
    return delta * torch.clamp(eps / _flat_norm(delta).clamp_min(1e-12), max=1.0)


def normalized_step(grad: Tensor, norm: str) -> Tensor:
    """Steepest-ascent direction of unit ``norm`` length: sign(g) for L-inf, g / ||g||_2 for L2."""
    if norm == "linf":
        return grad.sign()
    return grad / _flat_norm(grad).clamp_min(1e-12)
