"""Runnable examples (importable from the repository root, so tests and spawned DDP ranks can use them)."""
