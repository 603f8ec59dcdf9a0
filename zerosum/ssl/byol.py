"""BYOL (Grill et al. 2020): online projector + predictor regress an EMA target network (Eq. 1-2)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from zerosum.losses.byol import BYOLLoss
from zerosum.nets.projection import MLPHead
from zerosum.ssl.base import Outputs, SSLObjective


class BYOL(SSLObjective):
    """Online ``p = q(g(h))``, target ``z' = g'(h')`` from an exponential moving average of the
    encoder and projector, ``tau`` raised from ``tau_base`` to 1 by a cosine (BYOL Sec. 3.2):
    ``tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2``.

    Symmetric loss ``D(p_1, z'_2) + D(p_2, z'_1)``; with ADIOS view 2 is masked in both the online
    and the target branch (as the reference code).
    """

    def __init__(self, feature_dim: int, proj_hidden_dim: int = 4096, proj_output_dim: int = 256,
                 pred_hidden_dim: int = 4096, tau_base: float = 0.99):
        super().__init__()
        if not 0 <= tau_base <= 1:
            raise ValueError(f"tau_base must be in [0, 1], got {tau_base}")
        self.projector = MLPHead(feature_dim, proj_hidden_dim, proj_output_dim)
        self.predictor = MLPHead(proj_output_dim, pred_hidden_dim, proj_output_dim)
        self.tau_base, self.tau = tau_base, tau_base
        self.criterion = BYOLLoss()
        self.target_encoder: nn.Module | None = None
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def bind(self, encoder: nn.Module) -> None:
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)

    def encode(self, encoder: nn.Module, x) -> Outputs:
        if self.target_encoder is None:
            raise RuntimeError("BYOL.bind(encoder) must be called before encode (it builds the target network)")
        h = encoder.features(x)
        z = self.projector(h)
        with torch.no_grad():
            zt = self.target_projector(self.target_encoder.features(x))
        return {"h": h, "z": z, "p": self.predictor(z), "zt": zt}

    def plain_loss(self, o1: Outputs, o2: Outputs):
        return self.criterion(o1["p"], o2["zt"]) + self.criterion(o2["p"], o1["zt"])

    def masked_loss(self, clean, masked):
        return self.plain_loss(clean[0], masked[1])

    def tau_at(self, progress: float) -> float:
        return 1 - (1 - self.tau_base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1) / 2

    @torch.no_grad()
    def after_encoder_step(self, encoder: nn.Module, progress: float) -> None:
        """EMA update ``target <- tau * target + (1 - tau) * online`` with ``tau = tau_at(progress)``,
        ``progress`` being the fraction of training done before this step."""
        self.tau = self.tau_at(progress)
        for online, target in ((encoder, self.target_encoder), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(self.tau).add_(po.detach(), alpha=1 - self.tau)
