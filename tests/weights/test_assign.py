"""`assign_by_name`, the one copy of weights by layer name, and the tensors' file."""

import os

import numpy as np
import pytest
from helpers.models import tiny_model

from keras_pyramid.weights import convert
from keras_pyramid.weights.assign import WeightsMismatch, assign_by_name, weighted_layers


def shifted(model, offset):
    """{layer name: values + offset} of every weighted layer of `model`."""
    return {layer.name: [w + offset for w in layer.get_weights()]
            for layer in weighted_layers(model)}


def test_tensors_by_name_fill_a_flat_and_a_skipping_network_alike(tmp_path):
    source = tiny_model()
    tensors = shifted(source, 1.0)
    path = convert.save_tensors(str(tmp_path / "tensors.npz"), tensors)
    read = convert.read_tensors(path)
    for skip_dropped in (False, True):
        model = tiny_model(regularization="sepdrop", skip_dropped=skip_dropped)
        assert assign_by_name(read, model) == {"head": "copied", "layers": len(tensors)}
        for layer in weighted_layers(model):
            for a, b in zip(layer.get_weights(), tensors[layer.name]):
                np.testing.assert_array_equal(a, b)


def test_a_misfit_changes_nothing_and_the_head_can_be_replaced():
    source = shifted(tiny_model(classes=10), 1.0)
    model = tiny_model(classes=5)
    before = shifted(model, 0.0)
    with pytest.raises(WeightsMismatch, match=r"layer 'predictions' is \[\(22, 5\), \(5,\)\]"):
        assign_by_name(source, model)
    for name, values in shifted(model, 0.0).items():  # all or nothing
        for a, b in zip(values, before[name]):
            np.testing.assert_array_equal(a, b)
    report = assign_by_name(source, model, head="replace")
    assert report == {"head": "replaced", "layers": len(before) - 1}
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0],
                                  before["predictions"][0])
    del source["stage1_unit1_bn1"]
    with pytest.raises(WeightsMismatch, match="it has no layer 'stage1_unit1_bn1'"):
        assign_by_name(source, model, head="replace")
    with pytest.raises(ValueError, match="head='keep'"):
        assign_by_name(source, model, head="keep")


def test_the_tensors_digest_is_of_the_values_not_of_the_file(tmp_path):
    """What a preset pins (`converted_sha256`): the same for every file of
    the same tensors (the .npz's zip entries carry timestamps), another for
    any other value, dtype, shape or name; an unreadable file is a
    ValueError naming it, never unpickled."""
    rng = np.random.default_rng(0)
    tensors = {"stem_conv": [rng.normal(size=(3, 3, 3, 4)).astype("float32")],
               "stem_bn": [rng.normal(size=4).astype("float32") for _ in range(4)]}
    digest = convert.tensors_digest(tensors)
    path = convert.save_tensors(str(tmp_path / "tensors.npz"), tensors)
    assert convert.tensors_digest(convert.read_tensors(path)) == digest
    big_endian = {name: [v.astype(">f4") for v in values] for name, values in tensors.items()}
    assert convert.tensors_digest(big_endian) == digest  # the values, in any byte order
    changed = [
        {**tensors, "stem_conv": [np.nextafter(tensors["stem_conv"][0], 1, dtype="float32")]},
        {**tensors, "stem_conv": [tensors["stem_conv"][0].astype("float64")]},
        {**tensors, "stem_conv": [tensors["stem_conv"][0].reshape(3, 3, 4, 3)]},
        {"head_conv" if name == "stem_conv" else name: v for name, v in tensors.items()},
    ]
    assert len({convert.tensors_digest(t) for t in changed} | {digest}) == len(changed) + 1
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ValueError, match=f"{path} is not a converted-tensors file"):
        convert.read_tensors(path)
