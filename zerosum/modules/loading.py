"""A LightningModule rebuilt from a checkpoint, its class given by name (``ADIOS``) or import path
(YAML-friendly); a missing, truncated or foreign file gets one line naming the option and the file."""

from __future__ import annotations

import importlib

import lightning as L

from zerosum.checkpoints import read_checkpoint


def module_class_of(module_class: str, option: str = "module_class") -> type:
    """``zerosum.modules.<module_class>`` for a bare name, else the class at the import path."""
    module_path, _, name = module_class.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_path or "zerosum.modules"), name)
    except (ImportError, AttributeError, ValueError) as err:
        import zerosum.modules as modules

        raise ValueError(f"{option}: {module_class!r} is not an importable LightningModule class; allowed: "
                         f"{', '.join(modules.__all__)} or an import path 'package.module.Class'") from err
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise ValueError(f"{option}: {module_class!r} is not a LightningModule class; allowed: a LightningModule "
                         "subclass such as zerosum.modules.ADIOS")
    return cls


def load_module(ckpt_path: str, module_class: str, *, ckpt_option: str = "ckpt_path",
                class_option: str = "module_class") -> L.LightningModule:
    """``module_class.load_from_checkpoint(ckpt_path)`` on the CPU; errors name the caller's options."""
    cls = module_class_of(module_class, class_option)
    checkpoint = read_checkpoint(ckpt_path, option=ckpt_option)  # a clear line for a missing or truncated file
    saved = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if saved and saved.rpartition(".")[2] != cls.__name__:
        raise ValueError(f"{ckpt_option}: {ckpt_path!r} holds a {saved}, not a {cls.__name__}; allowed: a checkpoint "
                         f"of {module_class}, or {class_option}: {saved}")
    return cls.load_from_checkpoint(ckpt_path, map_location="cpu")
