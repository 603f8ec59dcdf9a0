"""Hyperparameters of a module whose network may be given as an instance.

``save_hyperparameters`` would store an ``nn.Module`` argument (pickled into every checkpoint, with a
warning). :func:`save_hyperparameters` ignores such arguments and records a short text in their place
(:func:`zerosum.nets.registry.not_stored`), so ``load_from_checkpoint`` without the network says what
to pass again instead of building a different one; names, import paths and class path mappings stay
ordinary hyperparameters and reload by themselves.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Optional, Sequence, Union

from lightning.pytorch.core.mixins import HyperparametersMixin
from lightning.pytorch.utilities.parsing import collect_init_args
from torch import nn

from zerosum.nets.registry import not_stored


def save_hyperparameters(module: HyperparametersMixin, *args: Any, ignore: Optional[Union[Sequence[str], str]] = None,
                         frame: Optional[types.FrameType] = None, logger: bool = True) -> None:
    """Lightning's ``save_hyperparameters`` (same arguments; ``frame`` defaults to the caller's), with
    every ``__init__`` argument given as an ``nn.Module`` instance replaced by a note that it is not
    stored. :class:`zerosum.modules.Game` routes its ``save_hyperparameters`` here."""
    frame = frame or inspect.currentframe().f_back
    ignore = [ignore] if isinstance(ignore, str) else list(ignore or [])
    init_args: dict = {}
    for local_args in collect_init_args(frame, [], classes=(HyperparametersMixin,)):
        init_args.update(local_args)
    instances = {k: v for k, v in init_args.items() if isinstance(v, nn.Module) and k not in ignore}
    HyperparametersMixin.save_hyperparameters(module, *args, ignore=[*ignore, *instances], frame=frame, logger=logger)
    for name, net in instances.items():
        if not args or name in args:
            module.hparams[name] = not_stored(net)
            module._hparams_initial[name] = module.hparams[name]
