"""Hyperparameter search: hypermodel (the KerasTuner HyperModel and its
space) and report (the results table and plot)."""
