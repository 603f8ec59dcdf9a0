"""CAAT's meta-net input: the per-sample training dynamics zeta_i (Zhou et al. 2023, Sec. 5).

For sample i with label y_i and clean prediction p_i = softmax(f(x_i)) the six features are
    1. its loss  CE(p_i, y_i),
    2. its class's average loss in the previous epoch,
    3. ||onehot(y_i) - p_i||_2  (the norm of the logit gradient of the loss),
    4. the margin  p_{i,y_i} - max_{k != y_i} p_{i,k},
    5. the negative entropy  sum_k p_{i,k} log p_{i,k},
    6. the class prior of y_i (its share of the training labels).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

NUM_FEATURES = 6


def sample_features(logits: Tensor, y: Tensor, class_loss: Tensor, class_prior: Tensor) -> Tensor:
    """``(B, 6)`` features from clean ``logits`` (detached here), labels and per-class tables ``(C,)``."""
    logits = logits.detach().float()
    num_classes = logits.shape[1]
    if class_loss.shape != (num_classes,) or class_prior.shape != (num_classes,):
        raise ValueError(f"class_loss and class_prior must have shape ({num_classes},); got "
                         f"{tuple(class_loss.shape)} and {tuple(class_prior.shape)}")
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    onehot = F.one_hot(y, num_classes).to(p.dtype)
    loss = -(onehot * log_p).sum(dim=1)
    p_true = (p * onehot).sum(dim=1)
    p_other = p.masked_fill(onehot.bool(), float("-inf")).amax(dim=1)
    return torch.stack([
        loss,
        class_loss.to(p)[y],
        (onehot - p).norm(dim=1),
        p_true - p_other,
        (p * log_p).sum(dim=1),
        class_prior.to(p)[y],
    ], dim=1)
