"""Property-based tests (hypothesis) over the builders' arguments: every
combination either builds a valid model or raises the documented ValueError
naming the argument, never another exception."""

import keras
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keras_pyramid
from keras_pyramid.models import hparams
from keras_pyramid.models.regularizers import PyramidSepDrop, ShakeDrop, StochasticDepth

# Models stay tiny (at most 3 units per stage, 16x16 images): a valid draw is
# built for real, on the backend under test.
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# Valid values, and values each argument must refuse. A draw corrupts at most
# two arguments, so a good share of the draws builds a model.
VALID = {
    "depth": st.sampled_from([8, 11, 14, 20, 29]),
    "alpha": st.one_of(st.integers(1, 24), st.floats(0.5, 24)),
    "bottleneck": st.booleans(),
    "regularization": st.sampled_from([None, "drop", "sepdrop", "shakedrop"]),
    "drop_rate": st.one_of(st.floats(0.0, 0.99), st.just(0), st.none()),  # None: 0.5
    "classes": st.integers(1, 12),
    "input_shape": st.one_of(st.none(), st.tuples(st.sampled_from([4, 7, 8, 12, 16]),
                                                  st.sampled_from([4, 5, 8, 16]),
                                                  st.sampled_from([1, 3]))),
    "seed": st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    "granularity": st.sampled_from(["batch", "sample"]),
    "weight_decay": st.one_of(st.floats(0.0, 1e-3), st.just(0)),
    "pooling": st.sampled_from([None, "avg", "max"]),
}
odd = st.sampled_from([None, "8", True, [8], float("nan")])
INVALID = {
    "depth": st.one_of(st.integers(-3, 7), st.sampled_from([9, 10, 12, 13, 15, 21]), odd),
    "alpha": st.one_of(st.floats(-4, 0), st.sampled_from([0, -1, "48", None, True, float("nan")])),
    "bottleneck": st.sampled_from(["yes", 1.5, None]),
    "regularization": st.sampled_from(["dropout", "", 1, "SepDrop"]),
    "drop_rate": st.one_of(st.floats(1.0, 5.0), st.floats(-5.0, -1e-9),
                           st.sampled_from(["8", True, [8], float("nan")])),
    "classes": st.one_of(st.integers(-3, 0), st.sampled_from([2.0, "10", True])),
    "input_shape": st.sampled_from([(16, 16, 0), (16, 16), (3, 8, 3), (0, 8, 3), (3, 16, 16),
                                    (16, 16, 3, 1), (16, 16, None)]),
    "seed": st.sampled_from([1.5, "0", True]),
    "granularity": st.sampled_from(["pixel", None, "Batch"]),
    "weight_decay": st.one_of(st.floats(-1.0, -1e-9), st.sampled_from(["1e-4", True])),
    "pooling": st.sampled_from(["sum", 1]),
}
ARGUMENT_NAMES = tuple(VALID)


def expected_units(depth, bottleneck):
    return (depth - 2) // (9 if bottleneck else 6) * 3


@SETTINGS
@given(data=st.data(), corrupted=st.sets(st.sampled_from(ARGUMENT_NAMES), max_size=2))
def test_pyramidnet_builds_or_raises_a_value_error_naming_the_argument(data, corrupted):
    arguments = {name: data.draw((INVALID if name in corrupted else VALID)[name], label=name)
                 for name in ARGUMENT_NAMES}
    depth, alpha, bottleneck = (arguments.pop(k) for k in ("depth", "alpha", "bottleneck"))
    try:
        model = keras_pyramid.PyramidNet(depth, alpha, bottleneck, **arguments)
    except ValueError as error:
        message = str(error)
        assert "Received:" in message, message
        named = message.split("Received: ")[1].split("=")[0]
        assert named in ARGUMENT_NAMES, message
        event(f"ValueError on {named}")
        return
    finally:
        keras.backend.clear_session(free_memory=False)
    # Built: the arguments were valid, and the model reflects them.
    assert not corrupted, f"accepted {({k: arguments.get(k) for k in corrupted})}"
    event("built a model")
    assert model.output.shape == (None, arguments["classes"])
    regularizers = [layer for layer in model.layers
                    if isinstance(layer, (StochasticDepth, PyramidSepDrop, ShakeDrop))]
    units = expected_units(depth, bottleneck)
    assert len(regularizers) == (units if arguments["regularization"] else 0)
    if arguments["regularization"]:
        rate = 0.5 if arguments["drop_rate"] is None else arguments["drop_rate"]  # the default
        assert regularizers[-1].drop_rate == pytest.approx(float(rate))


drop_rates = st.one_of(VALID["drop_rate"], INVALID["drop_rate"])
classes = st.one_of(VALID["classes"], INVALID["classes"])


SMALL_PRESETS = [name for name in keras_pyramid.list_models() if name.startswith("pyramidnet20_")]


@SETTINGS
@given(name=st.one_of(st.sampled_from(SMALL_PRESETS), st.text(max_size=12)),
       classes=classes, drop_rate=drop_rates)
def test_the_registry_builds_or_raises_a_value_error(name, classes, drop_rate):
    """Unknown names and bad overrides raise ValueError; the small presets
    stand in for all (building a 272-layer model 40 times takes minutes)."""
    try:
        model = keras_pyramid.build(name, classes=classes, drop_rate=drop_rate,
                                    input_shape=(8, 8, 3))
    except ValueError as error:
        assert "Received:" in str(error), str(error)
        return
    finally:
        keras.backend.clear_session(free_memory=False)
    assert name in SMALL_PRESETS
    # None overrides fall through to the preset's defaults.
    assert model.output.shape == (None, 10 if classes is None else classes)


@SETTINGS
@given(depth=st.one_of(VALID["depth"], INVALID["depth"]),
       alpha=st.one_of(VALID["alpha"], INVALID["alpha"]), regularization=st.sampled_from(
    ["none", "drop", "sepdrop", "shakedrop", "dropout"]), drop_rate=drop_rates)
def test_hparam_values_parse_or_raise_a_value_error(depth, alpha, regularization, drop_rate):
    values = {"depth": depth, "alpha": alpha, "regularization": regularization,
              "drop_rate": drop_rate, "learning_rate": 0.1, "batch_size": 16}
    try:
        parsed = {name: hparams.parse_value(name, str(value)) for name, value in values.items()}
    except ValueError as error:
        assert "hyperparameter" in str(error) and "Received:" in str(error)
        return
    assert parsed["depth"] >= 8 and (parsed["depth"] - 2) % 6 == 0
    assert parsed["regularization"] in hparams.REGULARIZATIONS
    assert 0 <= parsed["drop_rate"] < 1
