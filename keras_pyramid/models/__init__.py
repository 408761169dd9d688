"""The networks: regularizers (each a pure function beside its layer), shortcut,
drop_rates (the drop-rate rule), data_format (the axes), blocks
(the residual units), skipping (dropped branches not computed), init
(initial values), pyramidnet (the generic builder), presets (every
configuration and its weights, as data) and hparams (values -> a model)."""
