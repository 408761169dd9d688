"""The one config and saving round trip of the tests, as keras-hub's
`TestCase.run_serialization_test` and `run_model_saving_test`:

    run_serialization_test(PyramidSepDrop(0.3, identity_channels=7, seed=4))
    run_model_saving_test(model, images, tmp_path)

A layer or model of this package must survive both: its config is plain
JSON and rebuilds an equal object, and a `.keras` file reloads (in this
process, by the registered names alone) to the same class and outputs.
"""

import json
import os

import keras
import numpy as np


def run_serialization_test(instance):
    """`from_config(get_config())` and Keras' serialize/deserialize each give
    an object of the same class whose config writes the same JSON (tuples
    and lists alike, as in a file). Returns the object rebuilt from its config."""
    config = instance.get_config()
    written = _json(config)  # also: the config is JSON at all
    revived = instance.__class__.from_config(config)
    assert type(revived) is type(instance)
    assert _json(revived.get_config()) == written
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(instance)
    assert _json(restored.get_config()) == written
    return revived


def _json(config):
    return json.dumps(config, sort_keys=True)


def run_model_saving_test(model, inputs, folder, atol=1e-6, rtol=1e-6):
    """Saves `model` to `folder/model.keras` and loads it back (not compiled):
    an instance of the model's class, with the same layer classes and names,
    whose inference outputs on `inputs` match the model's. Returns the
    reloaded model."""
    path = os.path.join(os.fspath(folder), "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, compile=False)
    assert isinstance(restored, type(model)), type(restored)
    assert [(type(layer), layer.name) for layer in restored.layers] == [
        (type(layer), layer.name) for layer in model.layers]
    expected = keras.ops.convert_to_numpy(model(inputs, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(inputs, training=False)),
                               expected, atol=atol, rtol=rtol)
    return restored
