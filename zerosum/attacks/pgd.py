"""Projected gradient descent (Madry et al., 2018) for L-inf and L2 threat models.

Ilyas et al. (2019) use PGD everywhere: adversarial training (their robust models), the targeted
L2 attack that builds D_rand / D_det (their Eq. 7), and representation inversion that builds
D_R / D_NR (their Eq. 6, a PGD on a feature-distance loss without an eps-ball). One function covers
all three.

Everything lives in [0, 1] pixel space: wrap a model that expects normalised inputs with
:class:`zerosum.nets.Normalized` so ``eps`` means what users expect.

The function is safe to call from anywhere inside Lightning: it puts the model in eval mode and
restores its mode, takes gradients with respect to the input only (``torch.autograd.grad``, so no
``.grad`` appears on parameters), and leaves ``torch.inference_mode`` / ``no_grad`` contexts for the
duration of the attack (validation runs under inference mode). It also runs in full precision
whatever the trainer's precision (:func:`full_precision`): under ``16-mixed`` autocast the input
gradient of a confidently classified sample underflows to exactly zero and the attack stands still.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor
from torch.nn import functional as F

Number = Union[float, int, Tensor]

NORMS = ("linf", "l2")
RANDOM_STARTS = {"linf": ("uniform", "normal", None), "l2": ("sphere", "ball", "normal", None)}


@contextlib.contextmanager
def full_precision(device: Union[torch.device, str]) -> Iterator[None]:
    """Autocast off on ``device`` (e.g. inside a Lightning ``16-mixed`` / ``bf16-mixed`` step): the model
    runs in its parameters' dtype (float32 under mixed precision)."""
    device_type = torch.device(device).type
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def full_float(t: Tensor) -> Tensor:
    """Half-precision floats (from a mixed-precision forward) as float32; other tensors unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _per_sample(value: Number, x: Tensor, name: str) -> Tensor:
    """``value`` (a float or a (B,) tensor) as a tensor broadcastable against ``x`` (B, ...)."""
    batch, view = x.shape[0], (-1,) + (1,) * (x.dim() - 1)
    if isinstance(value, Tensor):
        value = value.detach().clone().to(device=x.device, dtype=x.dtype)
        if value.dim() == 0:
            return value.reshape((1,) * x.dim())
        if value.shape != (batch,):
            raise ValueError(f"{name}: a tensor of shape {tuple(value.shape)}; allowed: a float or a (B,)=({batch},) tensor")
        if (value < 0).any():
            raise ValueError(f"{name}: negative entries; allowed: values >= 0")
        return value.view(view)
    if value < 0:
        raise ValueError(f"{name}: {value} is negative; allowed: >= 0")
    return torch.full((1,) * x.dim(), float(value), device=x.device, dtype=x.dtype)


def _flat_norm(t: Tensor) -> Tensor:
    """Per-sample L2 norm of ``t`` (B, ...) shaped (B, 1, ..., 1)."""
    return t.flatten(1).norm(dim=1).view((-1,) + (1,) * (t.dim() - 1))


def _l2_shrink(delta: Tensor, eps: Tensor) -> Tensor:
    """Per-sample factor min(1, eps / ||delta||_2) that projects ``delta`` onto the L2 ball."""
    return torch.clamp(eps / _flat_norm(delta).clamp_min(1e-12), max=1.0)


def random_delta(x: Tensor, eps: Tensor, kind: Optional[str], init_std: float = 0.001) -> Tensor:
    """Initial perturbation: "uniform" in the L-inf box, "sphere" on / "ball" uniformly inside the
    L2 ball, "normal" ``init_std * N(0, I)``, None zero."""
    if kind is None:
        return torch.zeros_like(x)
    if kind == "uniform":
        return (torch.rand_like(x) * 2 - 1) * eps
    if kind == "normal":
        return init_std * torch.randn_like(x)
    direction = torch.randn_like(x)
    direction = direction / _flat_norm(direction).clamp_min(1e-12)
    if kind == "sphere":
        return direction * eps
    # "ball": radius eps * U^(1/d) gives the uniform distribution in the d-dimensional ball
    d = x[0].numel()
    radius = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype) ** (1.0 / d)
    return direction * eps * radius


def _cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target, reduction="none")


def pgd(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    target,
    *,
    eps: Number,
    step_size: Number,
    steps: int,
    norm: str = "linf",
    loss_fn: Optional[Callable[[Tensor, object], Tensor]] = None,
    targeted: bool = False,
    random_start: Optional[str] = None,
    init_std: float = 0.001,
    keep_best: bool = False,
    clamp: Optional[tuple[float, float]] = (0.0, 1.0),
) -> Tensor:
    """Projected gradient ascent (or descent if ``targeted``) on ``loss_fn(model(x_adv), target)``.

    Each step is ``x <- Proj_{B(x0, eps) ∩ box}(x ± step_size * s(∇_x L))`` with ``s`` the sign for
    L-inf and the per-sample normalised gradient for L2 (Madry et al., Eq. 2.1; Ilyas et al., Eq. 7).
    An infinite ``eps`` (``float("inf")``) gives the unconstrained optimisation of Ilyas et al.'s
    Eq. 6 (representation inversion) with only the pixel box.

    Args:
        model: maps a batch in [0, 1] pixel space to an output (logits, features, ...).
        x: clean inputs (B, ...).
        target: passed untouched to ``loss_fn`` (labels, target classes, clean probabilities,
            target features...).
        eps: radius of the threat model; a float or a per-sample tensor of shape (B,).
        step_size: step length (in the ``norm``); a float or a per-sample (B,) tensor.
        steps: number of gradient steps (0 returns the projected random start).
        norm: "linf" or "l2".
        loss_fn: ``loss_fn(output, target) -> (B,)`` per-sample loss; cross-entropy by default.
        targeted: False ascends the loss (untargeted attack); True descends it (toward ``target``).
        random_start: "uniform" (L-inf box), "sphere" / "ball" (on / inside the L2 ball),
            "normal" (``x + init_std * N(0, I)``) or None (start at ``x``).
        init_std: standard deviation of the "normal" start.
        keep_best: return, per sample, the iterate with the best loss seen (highest, or lowest if
            ``targeted``) instead of the last one.
        clamp: the valid pixel box ``(low, high)``, or None for no box.

    Returns:
        the adversarial batch, detached, same shape and dtype as ``x``. The attack itself runs with
        autocast off and half-precision inputs promoted to float32 (:func:`full_precision`).
    """
    if norm not in NORMS:
        raise ValueError(f"norm: {norm!r} is not a threat model; allowed: {', '.join(NORMS)}")
    if random_start not in RANDOM_STARTS[norm]:
        raise ValueError(f"random_start: {random_start!r} is not a start for norm {norm!r}; allowed: "
                         f"{', '.join(map(str, RANDOM_STARTS[norm]))}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps: {steps!r}; allowed: an integer >= 0")
    if not x.is_floating_point():
        raise TypeError(f"x: dtype {x.dtype}; allowed: a floating-point tensor in [0, 1] pixel space")
    loss_fn = loss_fn or _cross_entropy
    direction = -1.0 if targeted else 1.0

    was_training = getattr(model, "training", None)
    if was_training is not None:
        model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), full_precision(x.device):
            # clone out of inference mode: inference tensors cannot take part in autograd
            x0 = full_float(x.detach().clone())
            if isinstance(target, Tensor):
                target = full_float(target.detach().clone())
            eps_t = _per_sample(eps, x0, "eps")
            step_t = _per_sample(step_size, x0, "step_size")

            # The projected step, fused into few full-size kernels (the per-sample factors are tiny):
            # L-inf: Proj_{B(x0, eps) ∩ box} is an elementwise clamp to precomputed limits.
            signed_step = direction * step_t
            if norm == "linf":
                lower, upper = x0 - eps_t, x0 + eps_t
                low, high = clamp if clamp is not None else (None, None)
                lower = lower if low is None else lower.clamp_min(low)
                upper = upper if high is None else upper.clamp_max(high)

                def constrain(x_new: Tensor) -> Tensor:
                    return torch.clamp(x_new, lower, upper)

                def ascend(x_cur: Tensor, grad: Tensor) -> Tensor:
                    return torch.addcmul(x_cur, grad.sign(), signed_step)
            else:
                def constrain(x_new: Tensor) -> Tensor:
                    delta = x_new - x0
                    x_new = torch.addcmul(x0, delta, _l2_shrink(delta, eps_t))
                    return x_new.clamp(*clamp) if clamp is not None else x_new

                def ascend(x_cur: Tensor, grad: Tensor) -> Tensor:
                    return torch.addcmul(x_cur, grad, signed_step / _flat_norm(grad).clamp_min(1e-12))

            def batch_loss(x_in: Tensor) -> Tensor:
                loss = loss_fn(model(x_in), target)
                if loss.shape != (x0.shape[0],):
                    raise ValueError(f"loss_fn must return a per-sample loss of shape (B,)=({x0.shape[0]},); "
                                     f"got {tuple(loss.shape)} (use reduction='none')")
                return loss

            x_adv = constrain(x0 + random_delta(x0, eps_t, random_start, init_std)).detach()
            best_x, best_loss = x_adv.clone(), None

            def remember(x_cur: Tensor, loss: Tensor) -> None:
                nonlocal best_x, best_loss
                loss = loss.detach()
                if best_loss is None:
                    best_x, best_loss = x_cur.clone(), loss.clone()
                    return
                better = loss < best_loss if targeted else loss > best_loss
                best_loss = torch.where(better, loss, best_loss)
                best_x = torch.where(better.view((-1,) + (1,) * (x0.dim() - 1)), x_cur, best_x)

            for _ in range(int(steps)):
                x_adv.requires_grad_(True)
                loss = batch_loss(x_adv)
                (grad,) = torch.autograd.grad(loss.sum(), x_adv)
                x_adv = x_adv.detach()
                if keep_best:
                    remember(x_adv, loss)
                x_adv = constrain(ascend(x_adv, grad)).detach()
            if keep_best:
                with torch.no_grad():
                    remember(x_adv, batch_loss(x_adv))
                x_adv = best_x
            return x_adv.detach().to(x.dtype)
    finally:
        if was_training is not None:
            model.train(was_training)


def refuse_degenerate_attack(eps: float, steps: int, step_size: Optional[float], prefix: str = "") -> None:
    """An attack with a radius but no step (``steps < 1`` or ``step_size <= 0``) would train on noise
    (the random start) while calling it adversarial: refused unless ``eps`` is 0 (standard training)."""
    if eps < 0:
        raise ValueError(f"{prefix}eps: {eps} is negative; allowed: 0 (standard training) or a positive radius")
    if eps == 0:
        return
    if steps < 1:
        raise ValueError(f"{prefix}steps: {steps} with {prefix}eps={eps} plays no game (the attack never moves); "
                         f"allowed: an integer >= 1, or {prefix}eps: 0 for standard training")
    if step_size is not None and step_size <= 0:
        raise ValueError(f"{prefix}step_size: {step_size} with {prefix}eps={eps} plays no game (the attack never "
                         f"moves); allowed: a positive step, null for 2.5 * eps / steps, or {prefix}eps: 0")


class PGD:
    """PGD settings bundled for modules and callbacks (``PGD(norm="l2", eps=0.5)(model, x, y)``).

    Defaults follow Madry et al. as used by Ilyas et al.: ``step_size = 2.5 * eps / steps`` and a
    random start (uniform in the L-inf box, on the sphere for L2). ``random_start`` may also be a
    name accepted by :func:`pgd` or False. Extra keyword arguments of :func:`pgd` (``loss_fn``,
    ``targeted``, ...) pass through ``__call__``.
    """

    def __init__(self, norm: str = "linf", eps: float = 8 / 255, steps: int = 7, step_size: Optional[float] = None,
                 random_start: Union[bool, str, None] = True, keep_best: bool = False,
                 clamp: Optional[tuple[float, float]] = (0.0, 1.0)):
        if norm not in NORMS:
            raise ValueError(f"norm: {norm!r} is not a threat model; allowed: {', '.join(NORMS)}")
        if eps < 0 or steps < 0:
            raise ValueError(f"eps: {eps}, steps: {steps}; allowed: both >= 0")
        if random_start is True:
            random_start = "uniform" if norm == "linf" else "sphere"
        elif random_start is False:
            random_start = None
        if random_start not in RANDOM_STARTS[norm]:
            raise ValueError(f"random_start: {random_start!r} is not a start for norm {norm!r}; allowed: true, false, "
                             f"{', '.join(map(str, RANDOM_STARTS[norm]))}")
        self.norm, self.eps, self.steps, self.random_start = norm, float(eps), int(steps), random_start
        self.step_size = float(step_size) if step_size is not None else (2.5 * eps / steps if steps else 0.0)
        self.keep_best, self.clamp = keep_best, clamp

    @property
    def active(self) -> bool:
        """False when the attack is the identity (eps or steps zero): standard training / evaluation."""
        return self.eps > 0 and self.steps > 0

    def settings(self) -> dict:
        return {"norm": self.norm, "eps": self.eps, "steps": self.steps, "step_size": self.step_size,
                "random_start": self.random_start, "keep_best": self.keep_best}

    def __call__(self, model, x: Tensor, target, **kwargs) -> Tensor:
        if not self.active:
            return x.detach()
        options = dict(eps=self.eps, step_size=self.step_size, steps=self.steps, norm=self.norm,
                       random_start=self.random_start, keep_best=self.keep_best, clamp=self.clamp)
        options.update(kwargs)
        return pgd(model, x, target, **options)

    def __repr__(self) -> str:
        return f"PGD({', '.join(f'{k}={v!r}' for k, v in self.settings().items())})"
