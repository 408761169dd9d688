"""The comparison's statistics: a worked example by hand, a textbook's published
answer, and the intervals' coverage in a seeded simulation.

Pure Python (NumPy and scipy, no Keras tensor): runs once, under tensorflow.
"""

import math

import keras
import numpy as np
import pytest

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


# Student's sleep data (Cushny and Peebles, 1905; "Student", 1908): extra hours
# of sleep of 10 patients under two drugs. R's `t.test(extra ~ group, sleep,
# paired = TRUE)` publishes t = -4.0621, df = 9, p = 0.002833, and a 95%
# interval of the mean difference of (-2.4598858, -0.7001142) hours, and
# `t.test(extra[1:10])` the interval (-0.5297804, 2.0297804) of group 1's
# mean (0.75). As errors here: 0.2 + hours / 10, in [0, 1]; the shift leaves
# the differences, the scale scales them (t and p unchanged).
SLEEP_DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def as_errors(hours):
    return [0.2 + h / 10 for h in hours]


def test_students_sleep_data_gives_the_published_intervals():
    paired = statistics.paired_difference(as_errors(SLEEP_DRUG_2), as_errors(SLEEP_DRUG_1))
    assert paired.n == 10 and paired.mean == pytest.approx(0.158)
    assert (paired.low, paired.high) == (pytest.approx(0.07001142, abs=1e-7),
                                         pytest.approx(0.24598858, abs=1e-7))
    assert paired.p_value == pytest.approx(0.002833, abs=1e-6)
    summary = statistics.over_seeds(as_errors(SLEEP_DRUG_1))
    assert summary.mean == pytest.approx(0.275)
    assert (summary.low, summary.high) == (pytest.approx(0.14702196, abs=1e-7),
                                           pytest.approx(0.40297804, abs=1e-7))


def test_the_95_percent_intervals_cover_the_true_difference_95_times_in_100():
    """400 seeded comparisons of 8 seeds whose true mean difference is -0.01
    (normal, sd 0.01): the t interval covers it in 95% of them (binomial sd
    1.1%, so [91%, 99%]); the BCa bootstrap, which undercovers with few
    samples, in at least 82% (87% with these seeds). An interval of the wrong level, of the wrong
    quantity, or with its ends swapped falls outside."""
    rng = np.random.default_rng(11)
    covered = {"t": 0, "bca": 0}
    trials = 400
    for trial in range(trials):
        baseline = rng.uniform(0.10, 0.20, 8)
        candidate = baseline + rng.normal(-0.01, 0.01, 8)
        paired = statistics.paired_difference(candidate, baseline, seed=trial)
        covered["t"] += paired.low <= -0.01 <= paired.high
        covered["bca"] += paired.bca_low <= -0.01 <= paired.bca_high
    assert 0.91 <= covered["t"] / trials <= 0.99
    assert 0.82 <= covered["bca"] / trials <= 0.99, covered


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
