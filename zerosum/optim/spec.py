"""Optimizers and schedulers as YAML specs: the one way every zerosum module takes them.

A module argument typed ``OptimizerCallable`` (or ``LRSchedulerCallable``) has a default written with
:func:`spec`, e.g. ``optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.1, momentum=0.9)``.
The CLI shows that default as ``class_path`` / ``init_args`` (``--print_config``), and overriding a
single value works (``--model.optimizer.init_args.lr 0.05``); from the CLI the module receives a
callable, from Python either the spec or any callable (``functools.partial(torch.optim.Adam, lr=1e-3)``,
a class, a lambda). :func:`build` turns any of them into the object.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Union

Spec = Union[Mapping[str, Any], Callable[..., Any], str]


def spec(class_path: str, **init_args: Any) -> dict[str, Any]:
    """``{"class_path": class_path, "init_args": init_args}``: a default the CLI prints and edits."""
    return {"class_path": class_path, "init_args": dict(init_args)}


def import_object(path: str) -> Any:
    """``"package.module.Name"`` -> the object."""
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"expected a dotted import path such as 'torch.optim.SGD', got {path!r}")
    return getattr(importlib.import_module(module), name)


def build(what: Spec, *args: Any) -> Any:
    """``what(*args)`` for a callable; ``class_path(*args, **init_args)`` for a spec (or a bare
    class path string)."""
    if isinstance(what, str):
        return import_object(what)(*args)
    if isinstance(what, Mapping):
        return import_object(what["class_path"])(*args, **dict(what.get("init_args") or {}))
    if callable(what):
        return what(*args)
    raise TypeError(f"expected a callable or a class_path/init_args spec, got {type(what).__name__}")
