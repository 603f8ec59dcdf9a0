"""SimCLR (Chen et al. 2020): projector g and the NT-Xent loss between views (Eq. 1)."""

from __future__ import annotations

from torch import nn

from zerosum.losses.nt_xent import NTXentLoss
from zerosum.nets.projection import MLPHead
from zerosum.ssl.base import Outputs, SSLObjective


class SimCLR(SSLObjective):
    """``z = g(h)``, ``L = NT-Xent(z_1, z_2)``; with ADIOS the second view is masked:
    ``L_n = NT-Xent(z(x_1), z(x_2 * (1 - m_n)))`` (Shi et al. 2022, Sec. 3, with SimCLR's loss).

    ``gather`` (default): under DDP the negatives come from the global batch (all ranks' embeddings,
    gathered with gradients, see :class:`zerosum.losses.NTXentLoss`), as SimCLR and the official ADIOS
    code (solo-learn) do; the per-GPU batch size is the datamodule's ``batch_size``."""

    def __init__(self, feature_dim: int, proj_hidden_dim: int = 2048, proj_output_dim: int = 128, temperature: float = 0.2,
                 gather: bool = True):
        super().__init__()
        self.projector = MLPHead(feature_dim, proj_hidden_dim, proj_output_dim)
        self.criterion = NTXentLoss(temperature, gather)

    def encode(self, encoder: nn.Module, x) -> Outputs:
        h = encoder.features(x)
        return {"h": h, "z": self.projector(h)}

    def plain_loss(self, o1: Outputs, o2: Outputs):
        return self.criterion(o1["z"], o2["z"])

    def masked_loss(self, clean, masked):
        return self.criterion(clean[0]["z"], masked[1]["z"])
