"""Step-time benchmarks of optax_decay's optimizers against optax and PyTorch (run.py)."""
