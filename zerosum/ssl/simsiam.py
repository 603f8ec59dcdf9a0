"""SimSiam (Chen & He 2021): projector, predictor and stop-gradient, no negatives, no target net."""

from __future__ import annotations

import torch
from torch import nn

from zerosum.losses.simsiam import SimSiamLoss
from zerosum.nets.projection import MLPHead
from zerosum.ssl.base import Outputs, SSLObjective


class SimSiam(SSLObjective):
    """``z = g(h)`` (3-layer projector ending in BatchNorm), ``p = q(z)``,
    ``L = D(p_1, sg(z_2)) / 2 + D(p_2, sg(z_1)) / 2`` (SimSiam Eq. 4).

    With ADIOS both views are masked with their own masks (``mask_both_views``) and, per mask, the
    loss averages the reference code's terms: always ``D(p_1^m, z_2), D(p_2^m, z_1)``; with
    ``use_no_mask`` also ``D(p_1, z_2), D(p_2, z_1)``; with ``use_both_mask`` ``D(p_1^m, z_2^m),
    D(p_2^m, z_1^m)``; with ``use_symmetry_mask`` ``D(p_2, z_1^m), D(p_1, z_2^m)``.
    """

    mask_both_views = True

    def __init__(self, feature_dim: int, proj_hidden_dim: int = 2048, proj_output_dim: int = 2048,
                 pred_hidden_dim: int = 512, use_no_mask: bool = True, use_both_mask: bool = False,
                 use_symmetry_mask: bool = False):
        super().__init__()
        self.projector = MLPHead(feature_dim, proj_hidden_dim, proj_output_dim, num_layers=3, last_norm=True)
        self.predictor = MLPHead(proj_output_dim, pred_hidden_dim, proj_output_dim)
        self.use_no_mask, self.use_both_mask, self.use_symmetry_mask = use_no_mask, use_both_mask, use_symmetry_mask
        self.criterion = SimSiamLoss()

    def encode(self, encoder: nn.Module, x) -> Outputs:
        h = encoder.features(x)
        z = self.projector(h)
        return {"h": h, "z": z, "p": self.predictor(z)}

    def plain_loss(self, o1: Outputs, o2: Outputs):
        return 0.5 * (self.criterion(o1["p"], o2["z"]) + self.criterion(o2["p"], o1["z"]))

    def masked_loss(self, clean, masked):
        (c1, c2), (m1, m2) = clean, masked
        if c2 is None or m1 is None:
            raise ValueError("SimSiam masks both views: clean and masked outputs of both views are needed")
        d = self.criterion
        terms = [d(m1["p"], c2["z"]), d(m2["p"], c1["z"])]
        if self.use_no_mask:
            terms += [d(c1["p"], c2["z"]), d(c2["p"], c1["z"])]
        if self.use_both_mask:
            terms += [d(m1["p"], m2["z"]), d(m2["p"], m1["z"])]
        if self.use_symmetry_mask:
            terms += [d(c2["p"], m1["z"]), d(c1["p"], m2["z"])]
        return torch.stack(terms).mean()
