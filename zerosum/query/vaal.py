"""VAAL's sampling strategy (Sinha et al., ICCV 2019, Algorithm 2): label the ``budget`` unlabeled
samples with the lowest ``D(mu(x))``, the ones the discriminator is most sure are *unlabeled*, i.e.
least represented by the labeled pool in the VAE's latent space.

Implemented as a :class:`~zerosum.query.scoring.ScoringStrategy` with score ``-D(mu(x))`` (higher =
label first), so the pool is scored in eval mode (the VAE uses ``mu`` and its BatchNorm running
statistics), sharded over ranks and gathered; ties go to the smaller pool position.

Two deliberate departures from the official code: the pool is scored with the **evaluation**
transforms (the official code scores augmented images), and there is no extra sampling step after
the last round (its ``query`` runs once more after the final training).
"""

from __future__ import annotations

import torch
from torch import nn

from zerosum.query.scoring import ScoringStrategy


class VAALQuery(ScoringStrategy):
    """Select ``argmin_budget D(mu(x_U))``. The module must expose ``labeled_probability(x)`` (as
    :class:`zerosum.modules.VAAL` does) or ``vae`` and ``discriminator`` attributes."""

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return -labeled_probability(module, x)


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
