"""Helpers every room uses: files (atomic writes), checks (argument checks
with one message shape), versions (what a result was measured with)."""
