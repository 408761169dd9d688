"""keras_pyramid.utils.checks: one message shape, the argument and the value.

Pure Python: runs once, under tensorflow."""

import pytest
from helpers.backends import ONCE

from keras_pyramid.utils import checks

pytestmark = ONCE


@pytest.mark.parametrize("call, message", [
    (lambda: checks.check_int("requests", True, minimum=1),
     "`requests` must be an int >= 1. Received: requests=True"),
    (lambda: checks.check_int("steps", 2.0), "`steps` must be an int. Received: steps=2.0"),
    (lambda: checks.check_int("n", 11, minimum=1, maximum=10),
     "`n` must be an int >= 1 and <= 10. Received: n=11"),
    (lambda: checks.check_number("momentum", 1.0, minimum=0, below=1),
     "`momentum` must be a number in [0, 1). Received: momentum=1.0"),
    (lambda: checks.check_number("share", 1.5, minimum=0, maximum=1),
     "`share` must be a number in [0, 1]. Received: share=1.5"),
    (lambda: checks.check_number("seconds", 0, positive=True, below=1e9),
     "`seconds` must be a number > 0 and < 1000000000.0. Received: seconds=0"),
    (lambda: checks.check_number("decay", False, minimum=0),
     "`decay` must be a number >= 0. Received: decay=False"),
    (lambda: checks.check_rate("drop_rate", 1.0),
     "`drop_rate` must be a float in [0, 1). Received: drop_rate=1.0"),
    (lambda: checks.check_choice("runtime", "tensorrt", ("onnxruntime", "saved_model")),
     "`runtime` must be one of ('onnxruntime', 'saved_model'). Received: runtime='tensorrt'"),
    (lambda: checks.check_shape("image_size", (32, True), 2),
     "`image_size` must be 2 ints >= 1. Received: image_size=(32, True)"),
    (lambda: checks.check_shape("image_size", 32, 2),
     "`image_size` must be 2 ints >= 1. Received: image_size=32"),
    (lambda: checks.check_bool("flip", 1), "`flip` must be True or False. Received: flip=1"),
])
def test_a_refusal_names_the_argument_and_the_value(call, message):
    with pytest.raises(ValueError) as refused:
        call()
    assert str(refused.value) == message


def test_accepted_values_come_back_in_their_type():
    assert checks.check_int("n", 3, minimum=1, maximum=3) == 3
    assert checks.check_number("momentum", 0.0, minimum=0, below=1) == 0.0
    assert checks.check_number("x", 1e9 - 1, positive=True, below=1e9) == 1e9 - 1
    assert checks.check_shape("image_size", [24, 32], 2) == (24, 32)
    assert checks.check_rate("drop_rate", 0) == 0.0 and isinstance(
        checks.check_rate("drop_rate", 0), float)
