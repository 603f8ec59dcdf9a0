"""Callbacks shared by several games."""

from zerosum.callbacks.active_learning import ActiveLearning
from zerosum.callbacks.class_robustness import ClassRobustness
from zerosum.callbacks.robust_accuracy import RobustAccuracy

__all__ = ["ActiveLearning", "ClassRobustness", "RobustAccuracy"]

from zerosum.callbacks.knn_accuracy import KNNAccuracy  # noqa: E402
from zerosum.callbacks.mask_images import MaskImages  # noqa: E402
from zerosum.callbacks.online_linear_probe import OnlineLinearProbe  # noqa: E402

__all__ += ["KNNAccuracy", "MaskImages", "OnlineLinearProbe"]

from zerosum.callbacks.prediction_writer import PredictionWriter  # noqa: E402

__all__ += ["PredictionWriter"]
