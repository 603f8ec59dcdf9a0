"""Deep Bayesian active learning with MC dropout (Gal, Islam & Ghahramani, 2017).

``T`` stochastic forward passes give ``p_t = softmax(f_t(x))`` and ``p_bar = mean_t p_t``:

- max entropy: ``H[p_bar]``
- BALD (mutual information between prediction and weights, Houlsby et al. 2011; Gal et al. Eq. 6):
  ``I = H[p_bar] - mean_t H[p_t]``

The passes are **consistent** (Kirsch et al., 2019, BatchBALD, Sec. 4): pass ``t`` uses one dropout
mask for every sample of the pool, so the ``T`` passes are ``T`` sampled networks, the same for every
batch, every rank and a resumed run (the masks are drawn from ``(seed, round)``). That is what joint
scores such as BatchBALD need, and it makes a query reproducible.

Where the dropout is: the network's own dropout layers (their masks replaced by the consistent ones;
everything else, BatchNorm included, in eval mode), or, for a network that has none, dropout added at
query time on the inputs of every ``nn.Linear`` layer (the idea of baal's ``patch_module``: any
trained network becomes an MC-dropout model). ``dropout=p`` sets the rate in both cases.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from zerosum.query.scoring import ScoringStrategy, score_pool

DEFAULT_ADDED_RATE = 0.5  # Gal et al. 2017 use 0.5 before the dense layer


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


def _mask_shape(layer: nn.Module, out: torch.Tensor) -> tuple[int, ...]:
    """Element-wise masks for ``Dropout``; one value per channel for ``Dropout1d/2d/3d``."""
    channelwise = {nn.Dropout1d: 1, nn.Dropout2d: 2, nn.Dropout3d: 3}
    for cls, spatial in channelwise.items():
        if isinstance(layer, cls):
            return (out.shape[1],) + (1,) * spatial
    return tuple(out.shape[1:])


class ConsistentMCDropout:
    """``samples`` sampled networks from one: :meth:`probabilities` returns ``(T, B, C)`` softmax outputs,
    pass ``t`` with the same masks for every input (use it inside :func:`consistent_mc_dropout`).

    Args:
        module: the network (``module(x)`` returns logits).
        samples: number of passes ``T``.
        rate: dropout rate; ``None`` keeps the own layers' rates (and 0.5 where dropout is added).
        seed: seed of the masks.
    """

    def __init__(self, module: nn.Module, samples: int, rate: Optional[float] = None, seed: int = 0):
        self.module, self.samples, self.seed = module, int(samples), int(seed)
        own = dropout_layers(module)
        self.added = not own
        if self.added:
            self.layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
            if not self.layers:
                raise ValueError(f"dropout: {type(module).__name__} has neither dropout layers nor nn.Linear layers to "
                                 "add dropout to; allowed: a network with either")
            self.rates = [DEFAULT_ADDED_RATE if rate is None else float(rate)] * len(self.layers)
        else:
            self.layers = own
            self.rates = [m.p if rate is None else float(rate) for m in own]
        self.masks: dict[int, torch.Tensor] = {}
        self.t = 0
        self._handles: list = []

    def _mask(self, j: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """The ``(T, *shape)`` masks of layer ``j`` (drawn once, on the CPU, from ``(seed, j)``)."""
        if j not in self.masks:
            g = torch.Generator().manual_seed(self.seed * 7919 + j)
            keep = 1.0 - self.rates[j]
            bern = (torch.rand((self.samples, *shape), generator=g) < keep).float()
            self.masks[j] = (bern / keep if keep > 0 else bern).to(like.device)
        return self.masks[j][self.t].to(like.dtype)

    def __enter__(self) -> "ConsistentMCDropout":
        for j, layer in enumerate(self.layers):
            if self.added:
                def pre(mod, args, j=j):
                    x = args[0]
                    return (x * self._mask(j, (x.shape[-1],), x),) + tuple(args[1:])
                self._handles.append(layer.register_forward_pre_hook(pre))
            else:
                def post(mod, args, out, j=j):  # the layer itself is in eval mode (identity)
                    return out * self._mask(j, _mask_shape(mod, out), out)
                self._handles.append(layer.register_forward_hook(post))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(T, B, C)`` softmax outputs of the ``T`` passes (call with the module in eval mode).
        The passes differ only by their dropout masks, so parts of the network that hold no dropout and
        see the same input (a classifier's backbone) run once per batch, not ``T`` times."""
        out = []
        with reuse_unchanged_outputs(self.module, self.layers):
            for t in range(self.samples):
                self.t = t
                out.append(torch.softmax(self.module(x).float(), dim=1))
        return torch.stack(out)


def _dropout_free_parts(module: nn.Module, masked: set[int]) -> list[nn.Module]:
    """The largest submodules of ``module`` that contain none of the ``masked`` layers."""
    parts = []
    for child in module.children():
        inside = {id(m) for m in child.modules()}
        if not inside & masked:
            parts.append(child)
        elif id(child) not in masked:
            parts.extend(_dropout_free_parts(child, masked))
    return parts


@contextmanager
def reuse_unchanged_outputs(module: nn.Module, masked_layers: list[nn.Module]) -> Iterator[None]:
    """Inside, every largest submodule without a masked layer returns its previous output when it is
    called again with the very same input objects (eval mode: the same output), so repeated passes
    recompute only what follows a dropout mask. Exact: an input that is a new tensor is recomputed."""
    masked = {id(m) for m in masked_layers}
    patched = []
    for part in _dropout_free_parts(module, masked):
        original, memo = part.forward, {}

        def forward(*args, _original=original, _memo=memo, **kwargs):
            last = _memo.get("args")
            if (last is not None and not kwargs and len(last) == len(args)
                    and all(a is b for a, b in zip(args, last))):
                return _memo["out"]
            out = _original(*args, **kwargs)
            _memo.update(args=None if kwargs else args, out=out)
            return out

        had_own = "forward" in part.__dict__
        part.forward = forward
        patched.append((part, had_own, original))
    try:
        yield
    finally:
        for part, had_own, original in patched:
            if had_own:
                part.forward = original
            else:
                del part.forward


@contextmanager
def mc_dropout(module: nn.Module, samples: int = 20, rate: Optional[float] = None,
               seed: int = 0) -> Iterator[ConsistentMCDropout]:
    """Consistent MC dropout on ``module`` inside (hooks removed on exit)."""
    with ConsistentMCDropout(module, samples, rate, seed) as mc:
        yield mc


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def bald_score(probs: torch.Tensor) -> torch.Tensor:
    """Mutual information from ``(T, B, C)`` MC probabilities."""
    return _entropy(probs.mean(0)) - _entropy(probs).mean(0)


def max_entropy_score(probs: torch.Tensor) -> torch.Tensor:
    return _entropy(probs.mean(0))


class MCDropoutStrategy(ScoringStrategy):
    """Base of the MC-dropout strategies: the pool scored with ``samples`` consistent passes.

    Args:
        samples: MC-dropout passes ``T`` (>= 2; Gal et al. use 20 in their MNIST experiments, 100 at test time).
        dropout: dropout rate of the passes: ``None`` keeps the network's own rates (and adds 0.5 before
            every ``nn.Linear`` layer of a network without dropout).
        seed: seed of the dropout masks (combined with the labeled count: fresh masks every query).
    """

    def __init__(self, samples: int = 20, dropout: Optional[float] = None, seed: int = 0):
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise ValueError(f"samples: got {samples!r}; allowed: an int >= 2 (MC-dropout passes)")
        if dropout is not None and not 0 < dropout < 1:
            raise ValueError(f"dropout: got {dropout!r}; allowed: a rate in (0, 1), or None")
        self.samples, self.dropout, self.seed = samples, dropout, int(seed)

    def mc(self, module: nn.Module, pool) -> ConsistentMCDropout:
        return ConsistentMCDropout(module, self.samples, self.dropout, self.seed * 1_000_003 + pool.num_labeled)

    def score_probs(self, probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool_probabilities(self, trainer, module: nn.Module, pool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, T, C)`` MC probabilities of the unlabeled pool and its pool indices."""
        with self.mc(module, pool) as mc:
            probs, idx = score_pool(trainer, module, pool.unlabeled_dataloader(),
                                    lambda m, x: mc.probabilities(x).transpose(0, 1).reshape(len(x), -1))
        return probs.reshape(len(idx), self.samples, -1), idx

    def score(self, trainer, module: nn.Module, pool) -> tuple[torch.Tensor, torch.Tensor]:
        with self.mc(module, pool) as mc:
            return score_pool(trainer, module, pool.unlabeled_dataloader(),
                              lambda m, x: self.score_probs(mc.probabilities(x)))


class BALDStrategy(MCDropoutStrategy):
    """Label the samples of highest BALD mutual information (top-k; see :class:`BatchBALDStrategy`
    for batches that account for redundancy)."""

    def score_probs(self, probs: torch.Tensor) -> torch.Tensor:
        return bald_score(probs)


class MaxEntropyStrategy(MCDropoutStrategy):
    """Label the samples of highest entropy of the MC-averaged prediction."""

    def score_probs(self, probs: torch.Tensor) -> torch.Tensor:
        return max_entropy_score(probs)
