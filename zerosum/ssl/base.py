"""The interface every self-supervised objective implements, so ADIOS's game loop is written once.

An objective owns its heads (projector, predictor, a BYOL target) but not the encoder: ``encode``
receives the encoder (any zerosum net; ``features(x)`` is the representation ``h``) and returns a
dict of tensors for a batch of images, with ``"h"`` always among them. ``masked_loss`` compares
the clean views with one set of masked views; ``plain_loss`` is the objective without masks.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

Outputs = dict[str, torch.Tensor]


class SSLObjective(nn.Module):
    #: True when both views are masked, each with its own masks (SimSiam-ADIOS); otherwise only the
    #: second view is masked and the first stays clean (SimCLR-, BYOL-ADIOS).
    mask_both_views: bool = False

    def bind(self, encoder: nn.Module) -> None:
        """Called once with the encoder (BYOL copies it into its target network)."""

    def encode(self, encoder: nn.Module, x: torch.Tensor) -> Outputs:
        raise NotImplementedError

    def plain_loss(self, o1: Outputs, o2: Outputs) -> torch.Tensor:
        """The unmasked objective on two views."""
        raise NotImplementedError

    def masked_loss(self, clean: tuple[Outputs, Optional[Outputs]], masked: tuple[Optional[Outputs], Outputs]) -> torch.Tensor:
        """The objective for one mask: ``clean = (view 1, view 2 or None)`` and ``masked = (masked
        view 1 or None, masked view 2)``."""
        raise NotImplementedError

    def after_encoder_step(self, encoder: nn.Module, progress: float) -> None:
        """Called after every encoder optimizer step; ``progress`` in [0, 1] is the training fraction."""
