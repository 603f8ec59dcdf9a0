"""LightningModules: one per paper's game, plus the supervised baseline."""

from zerosum.modules.classifier import Classifier

__all__ = ["Classifier"]
