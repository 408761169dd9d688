"""The drop-rate rule: which rates a regularization takes, and the linear decay."""

import numpy as np
import pytest
from helpers.backends import ONCE

from keras_pyramid.models.drop_rates import check_drop_rates, linear_drop_rates

pytestmark = ONCE  # pure Python: the same answer on every backend


@pytest.mark.parametrize("regularization, drop_rate, new_drop_rate", [
    (None, None, None), (None, 0.5, None), ("drop", 0.0, None), ("shakedrop", 0.9, None),
    ("sepdrop", None, 0.3), ("sepdrop", 0.5, 0.0),
])
def test_rates_a_network_takes_pass_unchanged(regularization, drop_rate, new_drop_rate):
    assert check_drop_rates(regularization, drop_rate, new_drop_rate) == (drop_rate,
                                                                          new_drop_rate)


@pytest.mark.parametrize("regularization, drop_rate, new_drop_rate, message", [
    ("drop", 0.5, 0.3, r"regularization='sepdrop'.*Received: new_drop_rate=0.3$"),
    (None, 0.5, 0.3, r"regularization=None\). Received: new_drop_rate=0.3$"),
    ("sepdrop", 1.0, None, r"Received: drop_rate=1.0$"),
    ("sepdrop", -0.1, None, r"Received: drop_rate=-0.1$"),
    ("sepdrop", 0.5, 1.0, r"Received: new_drop_rate=1.0$"),
    ("sepdrop", True, None, r"Received: drop_rate=True$"),
    ("dropout", 0.5, None, r"Received: regularization='dropout'$"),
    ("none", 0.5, None, r"Received: regularization='none'$"),
])
def test_a_refusal_names_the_argument_and_the_value(regularization, drop_rate, new_drop_rate,
                                                     message):
    with pytest.raises(ValueError, match=message):
        check_drop_rates(regularization, drop_rate, new_drop_rate)


def test_linear_drop_rate_rule():
    rates = linear_drop_rates(4, 0.5)
    np.testing.assert_allclose(rates, [0.125, 0.25, 0.375, 0.5])
    assert linear_drop_rates(54, 0.5)[-1] == 0.5
