"""LightningModules: one per paper's game, plus the supervised baseline."""

from zerosum.modules.adversarial_training import AdversarialTraining
from zerosum.modules.caat import CAAT
from zerosum.modules.classifier import Classifier
from zerosum.modules.trades import TRADES
from zerosum.modules.adios import ADIOS
from zerosum.modules.linear_eval import LinearEval
from zerosum.modules.vaal import VAAL
from zerosum.modules.sral import SRAL

__all__ = ["AdversarialTraining", "CAAT", "Classifier", "TRADES"]
__all__ += ["VAAL"]
__all__ += ["ADIOS", "LinearEval"]
__all__ += ["SRAL"]
