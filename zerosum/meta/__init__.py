"""Meta-learning building blocks: the virtual optimiser step and per-sample meta features."""

from zerosum.meta.features import sample_features
from zerosum.meta.sync import all_reduce_mean, average_buffers, set_grads
from zerosum.meta.virtual_step import copied_buffers, functional_forward, virtual_sgd_step

__all__ = ["all_reduce_mean", "average_buffers", "copied_buffers", "functional_forward", "sample_features", "set_grads", "virtual_sgd_step"]
