"""Self-supervised objectives (interchangeable pieces for :class:`zerosum.modules.ADIOS`)."""

from __future__ import annotations

from zerosum.ssl.base import SSLObjective
from zerosum.ssl.byol import BYOL
from zerosum.ssl.simclr import SimCLR
from zerosum.ssl.simsiam import SimSiam

OBJECTIVES = {"simclr": SimCLR, "byol": BYOL, "simsiam": SimSiam}


def build_objective(name: str, feature_dim: int, **kwargs) -> SSLObjective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](feature_dim, **kwargs)


__all__ = ["BYOL", "OBJECTIVES", "SSLObjective", "SimCLR", "SimSiam", "build_objective"]

from zerosum.ssl.batch_groups import batch_norm_per_group  # noqa: E402
from zerosum.ssl.export import load_encoder, save_encoder  # noqa: E402

__all__ += ["batch_norm_per_group", "load_encoder", "save_encoder"]
