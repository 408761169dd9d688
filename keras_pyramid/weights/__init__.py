"""Trained weights: cache (fetch, check, store: returns a file), convert
(PyTorch checkpoints -> tensors keyed by this project's layer names) and
assign (weights into a network by layer name, flat or `skip_dropped`)."""
