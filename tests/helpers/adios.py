"""The reference per-mask ADIOS loss (the official code's loop), for tests: for every mask ``k`` the
clean view(s) and the masked view(s) go through the encoder in separate calls, so in training mode
every BatchNorm layer sees each of them with its own batch statistics."""

from __future__ import annotations

import torch

from zerosum.modules import ADIOS


def per_mask_ssl_loss(model: ADIOS, v1: torch.Tensor, v2: torch.Tensor, masks1, masks2):
    """``sum_k L(view 1, view 2 * (1 - m_k))`` re-encoding the clean view(s) for every mask (SimSiam:
    view 1, view 2, masked view 1, masked view 2 per mask, as the official ``simsiam_adios.py``)."""
    obj, enc = model.objective, model.encoder
    both = obj.mask_both_views
    loss, c1 = v1.new_zeros(()), None
    for k in range(masks2.shape[1]):
        c1 = obj.encode(enc, v1)
        c2 = obj.encode(enc, v2) if both else None
        m1 = obj.encode(enc, v1 * (1 - masks1[:, k:k + 1])) if both else None
        m2 = obj.encode(enc, v2 * (1 - masks2[:, k:k + 1]))
        loss = loss + obj.masked_loss((c1, c2), (m1, m2))
    return loss, c1


def nt_xent_rank(rank: int, world: int, port: int, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor,
                 out_dir: str) -> None:
    """One rank of the NT-Xent gather test: its shard of ``(x1, x2)`` through a shared linear map
    ``w``, the loss with and without gathering, DDP's mean over ranks of the gradients and of the
    losses, saved to ``out_dir/rank<k>.pt``."""
    import os

    import torch.distributed as dist

    from zerosum.losses import NTXentLoss

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out = {}
        b = len(x1) // world
        shard = slice(rank * b, (rank + 1) * b)
        for gather in (True, False):
            w = torch.nn.Parameter(weight.clone())
            loss = NTXentLoss(0.5, gather=gather)(x1[shard] @ w, x2[shard] @ w)
            loss.backward()
            grad, mean_loss = w.grad.clone(), loss.detach().clone()
            dist.all_reduce(grad)
            dist.all_reduce(mean_loss)
            out[gather] = {"grad": grad / world, "loss": mean_loss / world}
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
