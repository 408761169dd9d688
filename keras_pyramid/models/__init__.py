"""The networks: layers (regularizers, shortcut, the drop-rate rule), blocks
(the residual units), skipping (dropped branches not computed), init
(initial values), pyramidnet (the generic builder), presets (every
configuration and its weights, as data) and hparams (values -> a model)."""
