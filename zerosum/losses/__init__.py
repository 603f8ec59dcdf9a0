"""Losses: each one a module (and a function) alone in its file."""

from zerosum.losses.trades_kl import TradesKL, trades_kl

__all__ = ["TradesKL", "trades_kl"]
