"""Metrics (torchmetrics) that several games report."""

from zerosum.metrics.class_robustness import ClassRobustnessErrors

__all__ = ["ClassRobustnessErrors"]
