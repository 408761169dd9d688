"""Comparisons of candidates on the user's data (`applications/compare.py`):
candidates.py (what is compared), cells.py (one run per candidate, noise
rate and seed) and grid.py (the cells over KerasTuner's workers),
statistics.py (errors over seeds, paired differences, the verdict),
costs.py with macs.py and serving.py (training and serving cost),
comparison.py (check, run, measure, the record) and report.py with plots.py."""
