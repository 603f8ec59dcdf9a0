"""A LightningModule rebuilt from a checkpoint, its class given as an import path (YAML-friendly)."""

from __future__ import annotations

import importlib

import lightning as L


def load_module(ckpt_path: str, module_class: str, *, ckpt_option: str = "ckpt_path",
                class_option: str = "module_class") -> L.LightningModule:
    """``module_class.load_from_checkpoint(ckpt_path)`` on the CPU; errors name the caller's options."""
    module_path, _, name = module_class.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_path), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{class_option}={module_class!r} is not an importable LightningModule class") from err
    try:
        return cls.load_from_checkpoint(ckpt_path, map_location="cpu")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{ckpt_option}={ckpt_path!r}: no such checkpoint") from err
