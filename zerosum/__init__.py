"""zerosum: learning through adversarial games, as PyTorch Lightning parts."""

__version__ = "0.1.0"
