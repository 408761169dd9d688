"""Models from elsewhere, trained by a run like ours: a keras.applications
builder (`keras:NAME`, `keras:NAME@imagenet`) and a user's `.keras` classifier.

    model = build("keras:MobileNetV3Small", input_shape=(32, 32, 3), classes=10,
                  mean=(125.3, 123.0, 113.9), std=(63.0, 62.1, 66.7), weight_decay=1e-4)
    model = build("current.keras", input_shape=(32, 32, 3), classes=5)

Both come out in the form our programs serve, evaluate and export: raw
0-255 pixels in, a top-level `Dense` named `predictions` with a softmax out.

- `keras:NAME` is `[(x - mean) / std] -> NAME's convolutional backbone
  (include_top=False) -> global average pooling -> Dense(classes)`, as
  keras-hub and timm replace a classifier: the builder's own top differs
  across builders (MobileNetV3's is a 1x1 convolution), this one is the
  same for all. `weights=None` unless `@imagenet` asks for ImageNet's; then
  the builder's own preprocessing is used, which only builders with an
  `include_preprocessing` argument keep inside the model.
- A `.keras` file keeps its weights and its own input preprocessing (it
  must take raw 0-255 pixels, as our models do); its top `Dense` becomes
  the head above, with the file's weights when the class count is the
  same, newly initialized (by the run's seed) when it differs.

The run's weight decay is the paper's coupled L2 penalty `lambda / 2 *
sum(w^2)` on every trainable variable (as `PyramidNet(weight_decay=)`),
attached to the variables: a builder of keras.applications takes no
regularizer arguments, and every candidate must train by the same recipe.
"""

import functools
import inspect
import os

import keras

from keras_pyramid.models.plan import CLASSIFIER, find_classifier
from keras_pyramid.weights.files import UnloadableFile, load_keras_file

KERAS_PREFIX = "keras:"
KERAS_FILE_SUFFIX = ".keras"
TRAINED_TAGS = ("imagenet",)


def kind_of(model):
    """"keras" for `keras:NAME[@TAG]`, "file" for a path ending in .keras,
    else "registered" (a name of ours)."""
    if model.startswith(KERAS_PREFIX):
        return "keras"
    if model.endswith(KERAS_FILE_SUFFIX):
        return "file"
    return "registered"


def parse_keras_name(model):
    """(builder name, weights tag or None) of `keras:NAME[@TAG]`; ValueError
    naming `model` when Keras has no such builder or tag."""
    name, _, tag = model[len(KERAS_PREFIX):].partition("@")
    builders = sorted(n for n in dir(keras.applications) if n[:1].isupper())
    if name not in builders:
        close = [b for b in builders if b.lower() == name.lower()]
        hint = f" Did you mean keras:{close[0]}?" if close else f" Builders: {', '.join(builders)}"
        raise ValueError(f"keras.applications has no builder {name!r}.{hint} Received: "
                         f"model={model!r}")
    if tag and tag not in TRAINED_TAGS:
        raise ValueError(f"keras:{name} has trained weights {TRAINED_TAGS} only. Received: "
                         f"model={model!r}")
    if tag and not _takes_preprocessing(name):
        raise ValueError(f"{model}: {name} takes its ImageNet preprocessing outside the model, "
                         f"which a run cannot apply; use keras:{name} (trained from scratch) or "
                         f"a builder with include_preprocessing. Received: model={model!r}")
    return name, tag or None


def _takes_preprocessing(name):
    """Whether keras.applications' `name` can keep its preprocessing inside the model."""
    builder = getattr(keras.applications, name)
    return "include_preprocessing" in inspect.signature(builder).parameters


def build(model, input_shape, classes, mean=None, std=None, weight_decay=0.0):
    """The `keras.Model` of `model` (`keras:NAME[@TAG]` or a .keras path).
    ValueError naming what does not fit (the input size, the file)."""
    if kind_of(model) == "keras":
        network = _keras_application(model, input_shape, classes, mean, std)
    else:
        network = _from_file(model, input_shape, classes)
    if weight_decay:
        penalty = keras.regularizers.L2(weight_decay / 2)
        for variable in network.trainable_variables:
            variable.regularizer = penalty
    return network


def input_size_problem(model, image_size):
    """Why `keras:NAME[@TAG]` cannot take `image_size` (height, width) in
    Keras' image data format, or cannot be built at all (its TAG's weights
    cannot be fetched), or None. Keras names the size a builder needs only
    when it builds one, so it is built here once per model, size and data
    format: a comparison asks once per candidate and per cell."""
    return _input_size_problem(model, image_size, keras.config.image_data_format())


@functools.lru_cache(maxsize=64)
def _input_size_problem(model, image_size, data_format):
    shape = (*image_size, 3) if data_format == "channels_last" else (3, *image_size)
    try:
        _keras_application(model, shape, classes=2, mean=(0,) * 3, std=(1,) * 3)
    except ValueError as error:  # it names the size, or the weights that cannot be fetched
        return str(error)
    return None


def _keras_application(model, input_shape, classes, mean, std):
    name, tag = parse_keras_name(model)
    builder = getattr(keras.applications, name)
    options = {"include_preprocessing": bool(tag)} if _takes_preprocessing(name) else {}
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if not tag:  # the data's statistics; ImageNet weights bring their own
        channel_axis = -1 if keras.config.image_data_format() == "channels_last" else 1
        x = keras.layers.Normalization(axis=channel_axis, mean=mean,
                                       variance=[s**2 for s in std], name="normalization")(x)
    try:
        backbone = builder(include_top=False, weights=tag, input_shape=input_shape,
                           pooling="avg", **options)
    except ValueError as error:  # Keras names the size it needs
        raise ValueError(f"{input_shape} cannot enter {model}: {error}") from None
    except Exception as error:  # noqa: BLE001  fetching the weights: "URL fetch failure"...
        if not tag:
            raise
        reason = str(error).splitlines()[0][:200]
        raise ValueError(f"the {tag} weights of keras:{name} cannot be fetched ({reason}): "
                         f"connect to the internet once (Keras caches them in "
                         f"~/.keras/models), or use keras:{name} trained from scratch. "
                         f"Received: model={model!r}") from None
    x = backbone(x)
    outputs = _head(classes)(x)
    return keras.Model(inputs, outputs, name=name.lower())


def _head(classes):
    """The classifier, in float32 under mixed precision too (as our models'):
    the logits and the loss keep float32's precision."""
    return keras.layers.Dense(classes, activation="softmax", name=CLASSIFIER, dtype="float32")


def load_classifier_file(path):
    """The image classifier in a .keras file: ValueError naming the file
    when it is not one (one 4-D image input, a top Dense of >= 2 classes)."""
    if not os.path.isfile(path):
        raise ValueError(f"no such .keras file: {path!r}")
    try:
        model = load_keras_file(path)  # safe mode; one line for a file that is no model
    except UnloadableFile as error:
        raise ValueError(str(error)) from None
    head = find_classifier(model)
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or head is None:
        raise ValueError(f"{path!r} is not an image classifier: it needs one image input "
                         f"(batch, height, width, channels) and a Dense layer of at least 2 "
                         f"classes on top. Received: inputs "
                         f"{[tuple(i.shape) for i in model.inputs]}, top layer "
                         f"{model.layers[-1].__class__.__name__}")
    return model, head


def input_size(model):
    """(height, width) a loaded classifier takes, None for a free side."""
    shape = tuple(model.inputs[0].shape[1:])
    return shape[:2] if keras.config.image_data_format() == "channels_last" else shape[1:]


def _from_file(path, input_shape, classes):
    model, head = load_classifier_file(path)
    taken = tuple(model.inputs[0].shape[1:])
    if any(t is not None and t != s for t, s in zip(taken, input_shape)):
        raise ValueError(f"{input_shape} cannot enter {path}: it takes {taken}")
    # A new top-level head named as our programs serve it; the old one's
    # weights are kept when the classes match.
    new_head = _head(classes)
    outputs = new_head(head.input)
    network = keras.Model(model.inputs, outputs, name=model.name)
    if head.units == classes:
        new_head.set_weights(head.get_weights())
    return network
