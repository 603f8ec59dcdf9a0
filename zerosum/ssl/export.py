"""A trained encoder on its own: its state dict and how to rebuild it, in one file.

SSL checkpoints carry much that evaluation does not need (ADIOS's occlusion net, BYOL's target,
optimizer states). ``save_encoder`` writes the encoder alone (atomically); ``load_encoder(path)`` is
the one line that gives it back as a zerosum net in eval mode, ``features(x)`` being the representation.
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional

import torch
from torch import nn

from zerosum.atomic import atomic_write
from zerosum.nets import build_net
from zerosum.nets.base import FeatureClassifier

FORMAT = "zerosum.encoder/1"


def save_encoder(encoder: nn.Module, path: str, net: str, num_classes: int, in_channels: int,
                 net_args: Optional[dict[str, Any]] = None, image_size: Optional[int] = None) -> str:
    """Write ``encoder``'s state dict with the :func:`zerosum.nets.build_net` arguments that rebuild it
    (``image_size``: the side it was built for, which sizes e.g. a ViT's position embeddings)."""
    record = {"format": FORMAT, "net": net, "num_classes": int(num_classes), "in_channels": int(in_channels),
              "net_args": dict(net_args or {}), "image_size": None if image_size is None else int(image_size),
              "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    torch.save(record, buffer)
    atomic_write(path, buffer.getvalue())
    return path


def load_encoder(path: str) -> FeatureClassifier:
    """The encoder saved by :func:`save_encoder` (CPU, eval mode)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"encoder_path: {path!r} does not exist; allowed: a file written by save_encoder "
                                f"(ADIOS writes <log dir>/encoder.pt)")
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"encoder_path: {path!r} is not an exported encoder; allowed: a file written by save_encoder")
    size = record.get("image_size")  # absent in files written before it was recorded
    shape = (record["in_channels"], size, size) if size else None
    encoder = build_net(record["net"], record["num_classes"], record["in_channels"], encoder=True, sample_shape=shape,
                        **record["net_args"])  # built as ADIOS builds it
    encoder.load_state_dict(record["state_dict"])
    return encoder.eval()
