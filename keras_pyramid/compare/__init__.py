"""Comparisons of candidates on the user's data (issue 25, in progress):
statistics (errors over seeds, paired differences against a baseline, the
sentence a reader decides by). Candidates, the grid of cells, costs and the
report come next."""
