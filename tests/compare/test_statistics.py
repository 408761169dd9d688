"""The comparison's statistics: a worked example by hand, and scipy.stats.

Pure Python (NumPy and scipy, no Keras tensor): runs once, under tensorflow.
"""

import math

import keras
import numpy as np
import pytest
from scipy import stats

from keras_pyramid.compare import statistics

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="pure Python: runs once, under tensorflow")

CANDIDATE = [0.10, 0.12, 0.11]
BASELINE = [0.12, 0.15, 0.13]


def test_a_worked_example_by_hand():
    """d = (-0.02, -0.03, -0.02): mean -0.023333, std 0.0057735, se 0.0033333,
    t(0.975, 2) = 4.302653, so the interval is -0.023333 +- 0.014342; the t
    statistic is -7, and for 2 degrees of freedom P(T <= t) = 1/2 + t / (2
    sqrt(2 + t^2)), so p = 2 (1/2 - 7 / (2 sqrt(51))) = 0.019804."""
    paired = statistics.paired_difference(CANDIDATE, BASELINE)
    assert paired.mean == pytest.approx(-0.0233333, abs=1e-6)
    assert (paired.low, paired.high) == (pytest.approx(-0.0376755, abs=1e-6),
                                         pytest.approx(-0.0089912, abs=1e-6))
    assert paired.p_value == pytest.approx(1 - 7 / math.sqrt(51), abs=1e-9)
    assert statistics.verdict(paired, "sepdrop", "current.keras") == (
        "sepdrop has 2.3 points less error than current.keras (95% CI 0.9 to 3.8, 3 seeds)")


def test_the_intervals_are_scipys():
    rng = np.random.default_rng(3)
    baseline = rng.uniform(0.10, 0.20, 7)
    candidate = baseline - rng.normal(0.01, 0.01, 7)
    paired = statistics.paired_difference(candidate, baseline, seed=4)
    test = stats.ttest_rel(candidate, baseline)
    assert (paired.low, paired.high) == tuple(test.confidence_interval(0.95))
    assert paired.p_value == test.pvalue
    bootstrap = stats.bootstrap((candidate - baseline,), np.mean, method="BCa",
                                n_resamples=9999, random_state=np.random.default_rng(4))
    assert (paired.bca_low, paired.bca_high) == tuple(bootstrap.confidence_interval)
    summary = statistics.over_seeds(candidate)
    low, high = stats.t.interval(0.95, 6, loc=np.mean(candidate),
                                 scale=stats.sem(candidate))
    assert (summary.n, summary.low, summary.high) == (7, pytest.approx(low),
                                                      pytest.approx(high))
    assert summary.std == pytest.approx(np.std(candidate, ddof=1))


def test_no_evidence_few_seeds_and_degenerate_cases():
    paired = statistics.paired_difference([0.10, 0.13, 0.11], [0.11, 0.12, 0.115])
    assert statistics.verdict(paired, "a", "b").startswith(
        "no evidence of a difference between a and b at this budget")
    assert statistics.paired_difference([0.1, 0.2], [0.1, 0.2]).p_value == 1.0
    two = statistics.paired_difference([0.10, 0.12], [0.12, 0.15])
    assert two.bca_low is None and two.n == 2  # BCa needs 3 seeds at least
    assert statistics.few_seeds_warning(4).startswith("only 4 seeds")
    assert statistics.few_seeds_warning(5) is None
    assert statistics.over_seeds([0.2]) == statistics.OverSeeds(1, 0.2)
    with pytest.raises(ValueError, match="the same seeds, at least 2. Received: 2 and 3"):
        statistics.paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"errors in \[0, 1\].*Received: errors=\[1.5\]"):
        statistics.over_seeds([1.5])
