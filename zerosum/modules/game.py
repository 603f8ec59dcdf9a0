"""The one game loop of zerosum.

Every module is a game between *players*. A player owns networks (attributes of the module), an
optimizer and optionally a learning-rate scheduler, declared once in ``__init__``::

    self.add_player("vae", "vae", optimizer=vae_optimizer)

and a ``training_step`` is the paper's algorithm written as one :meth:`Game.play` call per update::

    self.play("task", lambda: self.task_objective(x_l, y_l))            # VAAL Algorithm 1, line 13
    self.play("vae", lambda: self.vae_objective(x_l, x_u))              # Eq. 4
    self.play("discriminator", lambda: self.discriminator_objective(...))  # Eq. 3

:meth:`Game.play` does what each update needs and nothing else: it freezes the other players
(``toggle_optimizer``), zeroes this player's gradients, runs ``manual_backward`` (so precision plugins
and gradient scaling apply), averages the gradients over DDP ranks where DDP does not, clips them if
the player asks, steps the optimizer, frees the gradients and, for ``interval="step"`` schedulers, the scheduler. Epoch
schedulers step at each training epoch's end. The objective is either a zero-argument callable,
evaluated with the other players frozen (their parameters get no gradient graph at all), or an
already computed loss tensor, whose backward is restricted to the player's parameters (CAAT's meta
loss, which needs the classifier's graph, is one).

Optimizers and schedulers come from YAML in one form for all modules: ``OptimizerCallable`` /
``LRSchedulerCallable`` arguments with :func:`zerosum.optim.spec` defaults (see :mod:`zerosum.optim.spec`).

Distributed training (:mod:`zerosum.parallel`): a game with a single player that plays once per
step is ordinary manual-optimisation DDP (DDP's reducer averages the gradients, overlapped with the
backward pass). A game with several players runs every backward outside DDP's reducer and averages
each player's gradients itself, one flat all-reduce per update, so no ``find_unused_parameters`` is
needed. After every training step rank 0's buffers are broadcast (DDP's own buffer rule, which
DDP itself applies only at the start of the next forward), so all ranks hold identical modules
whenever they are evaluated or saved. State that every rank updates identically and that DDP must not touch
is named in ``_ddp_params_and_buffers_to_ignore`` (SRAL's agent).

Outside a Trainer (unit tests, notebooks) :meth:`Game.play` still works: it uses optimizers built
once from the players' declarations and a plain ``backward``.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from zerosum.nets.hparams import save_hyperparameters
from zerosum.optim.spec import Spec, build
from zerosum.parallel import average_gradients, outside_ddp_reducer, sync_buffers, world_size

INTERVALS = ("step", "epoch")


@dataclass(frozen=True)
class Player:
    """Networks (attribute names of the module), optimizer, optional scheduler of one player."""

    networks: tuple[str, ...]
    optimizer: Spec
    scheduler: Optional[Spec] = None
    interval: str = "step"
    clip_norm: Optional[float] = None


class Game(L.LightningModule):
    """Base class of every zerosum module (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.players: dict[str, Player] = {}
        self._scheduled: dict[str, int] = {}

    def save_hyperparameters(self, *args, ignore=None, frame=None, logger: bool = True) -> None:
        """Lightning's, except that a network given as an ``nn.Module`` instance is not stored (a note
        says to pass it again to ``load_from_checkpoint``): see :mod:`zerosum.nets.hparams`."""
        save_hyperparameters(self, *args, ignore=ignore, frame=frame or inspect.currentframe().f_back, logger=logger)

    # ---- declaring players ------------------------------------------------------------------------
    def add_player(self, name: str, networks: Union[str, Sequence[str]], optimizer: Spec,
                   scheduler: Optional[Spec] = None, interval: str = "step",
                   clip_norm: Optional[float] = None) -> None:
        """Declare player ``name``: the module attributes it trains (``networks``, dotted names allowed:
        ``"agent.actor"``), its optimizer and
        an optional scheduler stepped per optimizer step (``interval="step"``) or per epoch."""
        if interval not in INTERVALS:
            raise ValueError(f"scheduler interval of player {name!r} must be one of {INTERVALS}, got {interval!r}")
        if clip_norm is not None and clip_norm <= 0:
            raise ValueError(f"clip_norm of player {name!r} must be positive, got {clip_norm}")
        networks = (networks,) if isinstance(networks, str) else tuple(networks)
        self.players[name] = Player(networks, optimizer, scheduler, interval, clip_norm)

    def player_parameters(self, name: str) -> list[nn.Parameter]:
        """The trainable parameters of ``name``'s networks (each once)."""
        seen: set[int] = set()
        out = []
        for attr in self.players[name].networks:
            owner = operator.attrgetter(attr)(self)
            for p in ([owner] if isinstance(owner, nn.Parameter) else owner.parameters()):
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def configure_optimizers(self):
        optimizers, schedulers = [], []
        self._scheduled = {}
        for name, player in self.players.items():
            opt = build(player.optimizer, self.player_parameters(name))
            optimizers.append(opt)
            if player.scheduler is not None:
                self._scheduled[name] = len(schedulers)
                schedulers.append({"scheduler": build(player.scheduler, opt), "interval": player.interval,
                                   "name": f"lr-{name}"})
        return (optimizers, schedulers) if schedulers else optimizers

    # ---- one update ---------------------------------------------------------------------------------
    def _attached(self) -> bool:
        return self._trainer is not None and bool(self._trainer.optimizers)

    def optimizer_of(self, name: str):
        """Player ``name``'s optimizer (the trainer's, or one built once here outside a Trainer)."""
        index = list(self.players).index(name)
        if self._attached():
            opts = self.optimizers()
            return opts[index] if isinstance(opts, list) else opts
        if getattr(self, "_standalone_optimizers", None) is None:
            self._standalone_optimizers = [build(p.optimizer, self.player_parameters(n)) for n, p in self.players.items()]
        return self._standalone_optimizers[index]

    def scheduler_of(self, name: str):
        """Player ``name``'s scheduler, or None."""
        if name not in self._scheduled or not self._attached():
            return None
        scheds = self.lr_schedulers()
        return scheds[self._scheduled[name]] if isinstance(scheds, list) else scheds

    @property
    def syncs_players_by_hand(self) -> bool:
        """Several players: gradients are averaged by :meth:`play`, not by DDP's reducer."""
        return len(self.players) > 1

    def play(self, name: str, loss: Union[Tensor, Callable[[], Tensor]],
             optimizer: Optional[torch.optim.Optimizer] = None) -> Tensor:
        """One update of player ``name`` on ``loss`` (a tensor, or a callable evaluated with the other
        players frozen); returns the detached loss. ``optimizer`` replaces the player's own for this
        update (e.g. a throw-away probe optimizer over the same parameters); its scheduler is then
        not stepped."""
        opt = optimizer if optimizer is not None else self.optimizer_of(name)
        params = [p for group in opt.param_groups for p in group["params"]]
        clip = self.players[name].clip_norm
        if not self._attached():
            value = loss() if callable(loss) else loss
            opt.zero_grad(set_to_none=True)
            value.backward(inputs=params)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return value.detach()
        if optimizer is not None and not isinstance(optimizer, LightningOptimizer):
            opt = LightningOptimizer._to_lightning_optimizer(optimizer, self.trainer.strategy)
        by_hand = self.syncs_players_by_hand
        with outside_ddp_reducer(self.trainer) if by_hand else contextlib.nullcontext():
            if callable(loss):
                with self.toggled_optimizer(opt):
                    value = loss()
                    opt.zero_grad(set_to_none=True)
                    self.manual_backward(value)
            else:
                value = loss
                opt.zero_grad(set_to_none=True)
                self.manual_backward(value, inputs=params)
        if by_hand:
            average_gradients(params)
        if clip is not None:
            self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad(set_to_none=True)  # no gradient outlives its update
        if optimizer is None and self.players[name].interval == "step":
            scheduler = self.scheduler_of(name)
            if scheduler is not None:
                scheduler.step()
        return value.detach()

    # ---- the loop's cadence -------------------------------------------------------------------------
    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if world_size() > 1:
            sync_buffers(self, skip=getattr(self, "_ddp_params_and_buffers_to_ignore", ()))

    def on_train_epoch_end(self) -> None:
        for name, player in self.players.items():
            if player.interval == "epoch":
                scheduler = self.scheduler_of(name)
                if scheduler is not None:
                    scheduler.step()
