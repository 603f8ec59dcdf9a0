"""MLP heads of self-supervised objectives: SimCLR/BYOL/SimSiam projectors and predictors."""

from __future__ import annotations

from torch import nn


class MLPHead(nn.Sequential):
    """``num_layers`` linear layers; every hidden layer is followed by BatchNorm1d and ReLU.

    SimCLR projector: ``MLPHead(d, 2048, 128)``; BYOL projector ``MLPHead(d, 4096, 256)`` and
    predictor ``MLPHead(256, 4096, 256)``; SimSiam projector ``MLPHead(d, 2048, 2048, num_layers=3,
    last_norm=True)`` (BatchNorm without affine after the output, as in SimSiam) and predictor
    ``MLPHead(2048, 512, 2048)``.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, last_norm: bool = False):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim, bias=not last_norm))
        if last_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
