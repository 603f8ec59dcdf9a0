"""Losses: each one a module (and a function) alone in its file."""

from zerosum.losses.trades_kl import TradesKL, trades_kl
from zerosum.losses.byol import BYOLLoss
from zerosum.losses.nt_xent import NTXentLoss
from zerosum.losses.simsiam import SimSiamLoss
from zerosum.losses.sparsity import CoverageNegentropy, MaskSparsityPenalty
from zerosum.losses.pool_adversarial import PoolDiscriminatorLoss, VAEAdversarialLoss
from zerosum.losses.vae_loss import BetaVAELoss

__all__ = ["TradesKL", "trades_kl"]
__all__ += ["BYOLLoss", "CoverageNegentropy", "MaskSparsityPenalty", "NTXentLoss", "SimSiamLoss"]
__all__ += ["BetaVAELoss", "PoolDiscriminatorLoss", "VAEAdversarialLoss"]
