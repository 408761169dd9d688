"""Multiply-adds: the forward cost of one image through a built Keras 3 model.

    multiply_adds(keras_pyramid.build("pyramidnet110_a48", input_shape=(32, 32, 3), classes=10))
    # 403,813,504: 0.40 G multiply-adds (0.81 GFLOPs at 2 FLOPs each)

Counted from the layers that do the multiplying, one image, inference
(`training=False`), every call of a layer (a layer called twice counts twice).
With `P_out` the output positions (all output elements over the output
channels: `H_out * W_out` for a 2D image, 1 for a vector) and `k` the product
of the kernel's spatial sizes (`k_h * k_w` in 2D):

    Conv1D/2D/3D        P_out * k * (C_in / groups) * C_out
    DepthwiseConv1D/2D  P_out * k * C_in * depth_multiplier
    SeparableConv1D/2D  P_out * (k * C_in * m + C_in * m * C_out)  (depthwise,
                        m = depth_multiplier, then the 1x1 pointwise)
    Conv1D/2D/3DTranspose  P_in * k * C_in * C_out  (every input position
                        meets the whole kernel)
    Dense               P_out * C_in * units  (any rank: one matrix-vector
                        product per position, e.g. per token)

Not counted: bias additions, BatchNormalization and Normalization (an affine map
per element at inference), activations, pooling (also PyramidShortcut's),
zero padding, additions and concatenations, the branch regularizers' scaling
(`(1 - d) F(x)` at inference), and every other layer (e.g. EinsumDense and
attention): all but the last are one or two operations per element, a few
per cent of a convolutional network's multiply-adds. A quantized layer counts
like its float original.

How: the counted layers are found at any depth (models nested as layers,
custom layers holding sublayers such as `SkippableBranch`), each one's `call`
is wrapped to record the shapes it sees, and one image of zeros goes through
the model (under JAX only traced, `jax.eval_shape`: shapes, no arithmetic);
then the layers get their own methods back. Not Keras' symbolic pass
(`compute_output_spec`): that asks each layer of a functional model for its
output shape and never reaches the layers inside a custom layer.
"""

import contextlib
import math

import keras

CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
              keras.layers.Conv3DTranspose)
DENSE = (keras.layers.Dense,)
COUNTED = CONVOLUTIONS + DEPTHWISE + SEPARABLE + TRANSPOSED + DENSE


def multiply_adds(model, input_shape=None):
    """The forward multiply-adds of one image through `model` at inference,
    the sum of `multiply_adds_by_layer` (see the module doc for what is counted).

    Args:
        model: a built Keras 3 model (or layer).
        input_shape: the shape of one input without the batch axis, e.g.
            (32, 32, 3); None: the model's own (`model.inputs`), which must
            then have every size known.

    Returns:
        int.
    """
    return sum(count for _, count in multiply_adds_by_layer(model, input_shape))


def multiply_adds_by_layer(model, input_shape=None):
    """[(layer name, multiply-adds)], one entry per call of a counted layer, in
    call order (arguments as `multiply_adds`)."""
    specs = _input_specs(model, input_shape)
    calls = []
    with _recording(counted_layers(model), calls):
        _forward(model, specs)
    return [(layer.name, layer_multiply_adds(layer, seen, made)) for layer, seen, made in calls]


def counted_layers(model):
    """The layers of a counted kind inside `model`, at any depth, each once."""
    found = {}
    for layer in _walk(model):
        if isinstance(layer, COUNTED):
            found.setdefault(id(layer), layer)
    return list(found.values())


def _walk(layer, seen=None):
    """`layer` and every layer inside it, depth first, each once."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    # Not into a counted layer: what it holds is part of its own count.
    if isinstance(layer, COUNTED):
        return
    for inner in _sublayers(layer):
        yield from _walk(inner, seen)


def _sublayers(layer):
    """The layers directly inside `layer`: its public `layers` (a model's, or a
    `SkippableBranch`'s, as `drop_schedule.branch_regularizers` walks them),
    then those Keras tracks in its attributes, for a custom layer that holds
    layers without listing them."""
    public = getattr(layer, "layers", None)
    public = list(public) if isinstance(public, (list, tuple)) else []
    flatten = getattr(layer, "_flatten_layers", None)
    tracked = flatten(include_self=False, recursive=False) if flatten else []
    return [inner for inner in public + list(tracked) if isinstance(inner, keras.layers.Layer)]


def _input_specs(model, input_shape):
    """[(shape, dtype)] of one image, batch 1, per model input."""
    specs = getattr(model, "inputs", None)
    if input_shape is not None:
        return [((1, *input_shape), specs[0].dtype if specs else "float32")]
    if not specs:
        raise ValueError("`model` has no known inputs (not a built functional or Sequential "
                         "model): give `input_shape`, e.g. (32, 32, 3).")
    for spec in specs:
        if any(size is None for size in spec.shape[1:]):
            raise ValueError(f"`model` takes inputs of shape {spec.shape}: give `input_shape` "
                             "with every size known, e.g. (32, 32, 3).")
    return [((1, *spec.shape[1:]), spec.dtype) for spec in specs]


def _forward(model, specs):
    """One inference pass of `model` on inputs of these (shape, dtype) specs."""
    def run(*inputs):
        return model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)

    if keras.backend.backend() == "jax":
        import jax  # this backend only

        # Shapes only: JAX traces the pass without running it (an eager pass
        # compiles every op on its own, tens of seconds for PyramidNet-110 on a CPU).
        return jax.eval_shape(run, *(jax.ShapeDtypeStruct(*spec) for spec in specs))
    return run(*(keras.ops.zeros(*spec) for spec in specs))


@contextlib.contextmanager
def _recording(layers, calls):
    """Wraps the method each layer's `__call__` runs (`call`, or
    `quantized_call` on a quantized layer) to append (layer, input shape,
    output shape) to `calls`; restores the layers' own on exit."""
    wrapped = []
    try:
        for layer in layers:
            method = "quantized_call" if getattr(layer, "quantization_mode", None) else "call"
            # An instance may already hold its own method (put back as it was).
            own = layer.__dict__.get(method)
            setattr(layer, method, _recorder(layer, getattr(layer, method), calls))
            wrapped.append((layer, method, own))
        yield calls
    finally:
        for layer, method, own in reversed(wrapped):
            if own is None:
                delattr(layer, method)
            else:
                setattr(layer, method, own)


def _recorder(layer, call, calls):
    """`call`, also appending (layer, input shape, output shape) to `calls`."""
    def recording(inputs, *args, **kwargs):
        outputs = call(inputs, *args, **kwargs)
        calls.append((layer, _shape(inputs), _shape(outputs)))
        return outputs

    return recording


def _shape(tensor):
    """A tensor's (or a traced value's) shape as ints: every size is known here."""
    return tuple(int(size) for size in keras.ops.shape(tensor))


def layer_multiply_adds(layer, input_shape, output_shape):
    """The multiply-adds of one call of a counted `layer` that took
    `input_shape` and gave `output_shape` (batch axes included, so a layer
    that folds other axes into the batch is counted whole); the formulas are
    the module doc's."""
    if isinstance(layer, DENSE):
        # P_out * C_in * units
        return _positions(output_shape, layer.units) * input_shape[-1] * layer.units
    axis = -1 if layer.data_format == "channels_last" else 1
    c_in, c_out = input_shape[axis], output_shape[axis]
    k = math.prod(layer.kernel_size)
    if isinstance(layer, TRANSPOSED):
        # P_in * k * C_in * C_out
        return _positions(input_shape, c_in) * k * c_in * c_out
    positions = _positions(output_shape, c_out)
    if isinstance(layer, CONVOLUTIONS):
        # P_out * k * (C_in / groups) * C_out
        return positions * k * (c_in // layer.groups) * c_out
    if isinstance(layer, DEPTHWISE):
        # P_out * k * C_in * m: C_out = C_in * m, one k-tap filter per output channel
        return positions * k * c_out
    # Separable: the depthwise part (C_in * m channels), then the 1x1 pointwise
    middle = c_in * layer.depth_multiplier
    return positions * (k * middle + middle * c_out)


def _positions(shape, channels):
    """The positions a shape holds: its elements over its channels (batch 1)."""
    return math.prod(shape) // channels
