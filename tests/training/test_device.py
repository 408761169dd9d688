"""Defaults per backend and device kind (`keras_pyramid.training.device`)."""

import pytest

from keras_pyramid.training import device


def test_mixed_precision_auto_is_off_on_this_cpu_and_explicit_values_stand():
    assert device.accelerator_kind() == "cpu"  # CI has no GPU: what auto sees here
    assert device.resolve_mixed_precision("auto") == "off"
    for value in ("off", "bfloat16", "float16"):
        assert device.resolve_mixed_precision(value) == value


@pytest.mark.parametrize("kind, has_bfloat16, expected", [
    ("gpu", True, "bfloat16"), ("gpu", False, "off"), ("tpu", None, "bfloat16"),
    ("cpu", None, "off")])
def test_mixed_precision_auto_follows_the_documented_table(kind, has_bfloat16, expected):
    assert device.resolve_mixed_precision("auto", kind, has_bfloat16) == expected


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="mixed_precision='half'"):
        device.resolve_mixed_precision("half")
