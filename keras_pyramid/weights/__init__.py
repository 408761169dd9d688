"""Trained weights: cache (fetch, check, store) and convert (PyTorch
checkpoints -> this project's layer names)."""
