"""Meta-learning building blocks: the virtual optimiser step of Meta-Weight-Net style methods."""

from zerosum.meta.virtual_step import AtParameters, copied_buffers, functional_forward, virtual_sgd_step

__all__ = ["AtParameters", "copied_buffers", "functional_forward", "virtual_sgd_step"]
