"""The comparison's statistics: worked examples by hand, a textbook's published
answer, and the intervals' coverage and the tests' power in seeded simulations.

Pure Python (NumPy and scipy, no Keras tensor): runs once, under tensorflow.
"""

import itertools
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
    sqrt(2 + t^2)), so p = 2 (1/2 - 7 / (2 sqrt(51))) = 0.019804. Every d is
    negative: of the 2^3 sign assignments only these and their mirror reach
    |mean|, so the sign-flip p is 2/8 = 0.25 > 0.05, and the verdict says so
    (the t interval alone rests on normality, which 3 seeds cannot check)."""
    paired = statistics.paired_difference(CANDIDATE, BASELINE)
    assert paired.mean == pytest.approx(-0.0233333, abs=1e-6)
    assert (paired.low, paired.high) == (pytest.approx(-0.0376755, abs=1e-6),
                                         pytest.approx(-0.0089912, abs=1e-6))
    assert paired.p_value == pytest.approx(1 - 7 / math.sqrt(51), abs=1e-9)
    assert paired.sign_flip_p == pytest.approx(0.25)
    assert statistics.verdict(paired, "sepdrop", "current.keras") == (
        "sepdrop has 2.3 points less error than current.keras (95% CI 0.9 to 3.8, 3 seeds; "
        "without assuming normality, sign-flip p = 0.25, the least 3 seeds can give)")


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
    """Besides R's numbers: the differences are nine positive and one 0, so
    the only sign assignments reaching the observed |sum| (the largest) are
    all + and all -, each with the 0 either way: p = 4 / 2^10 = 1/256. With
    10 pairs (BCA_MIN_SEEDS) the BCa interval is given, and holds the mean."""
    paired = statistics.paired_difference(as_errors(SLEEP_DRUG_2), as_errors(SLEEP_DRUG_1))
    assert paired.n == 10 and paired.mean == pytest.approx(0.158)
    assert (paired.low, paired.high) == (pytest.approx(0.07001142, abs=1e-7),
                                         pytest.approx(0.24598858, abs=1e-7))
    assert paired.p_value == pytest.approx(0.002833, abs=1e-6)
    assert paired.sign_flip_p == pytest.approx(1 / 256)
    assert paired.bca_low < paired.mean < paired.bca_high
    summary = statistics.over_seeds(as_errors(SLEEP_DRUG_1))
    assert summary.mean == pytest.approx(0.275)
    assert (summary.low, summary.high) == (pytest.approx(0.14702196, abs=1e-7),
                                           pytest.approx(0.40297804, abs=1e-7))


def test_the_95_percent_intervals_cover_the_true_difference_95_times_in_100():
    """400 seeded comparisons of 10 seeds whose true mean difference is -0.01
    (normal, sd 0.01): the t interval covers it in 95% of them (binomial sd
    1.1%, so [91%, 99%]); the BCa bootstrap, which undercovers with few
    samples (91% at 10 seeds in a 1000-trial simulation, 83% at 5), in at
    least 86%. An interval of the wrong level, of the wrong quantity, or with
    its ends swapped falls outside."""
    rng = np.random.default_rng(11)
    covered = {"t": 0, "bca": 0}
    trials = 400
    for trial in range(trials):
        baseline = rng.uniform(0.10, 0.20, 10)
        candidate = baseline + rng.normal(-0.01, 0.01, 10)
        paired = statistics.paired_difference(candidate, baseline, seed=trial)
        covered["t"] += paired.low <= -0.01 <= paired.high
        covered["bca"] += paired.bca_low <= -0.01 <= paired.bca_high
    assert 0.91 <= covered["t"] / trials <= 0.99
    assert 0.86 <= covered["bca"] / trials <= 0.99, covered


def test_bca_is_given_from_ten_seeds_on():
    """BCa is a large-sample method (83% coverage for a nominal 95% with 5
    normal pairs): 9 pairs with spread get no BCa interval, 10 get one."""
    rng = np.random.default_rng(3)
    baseline = rng.uniform(0.10, 0.20, 10)
    candidate = baseline + rng.normal(-0.01, 0.01, 10)
    nine = statistics.paired_difference(candidate[:9], baseline[:9])
    assert nine.low is not None and (nine.bca_low, nine.bca_high) == (None, None)
    ten = statistics.paired_difference(candidate, baseline)
    assert ten.bca_low < ten.mean < ten.bca_high


def test_the_sign_flip_p_against_a_hand_enumeration():
    """d = (1, 2, 3) points: the signed sums are +-1 +-2 +-3 = 6, 4, 2, 0, 0,
    -2, -4, -6, so |sum| >= 6 in 2 of 8: p = 0.25. d = (1, 2, 3, -1): sum =
    7 - 2 * (the magnitudes flipped against the observed), |sum| >= 5 when the
    flipped ones sum to <= 1 ({}, either 1: 3 sets) or >= 6 (their
    complements: 3): p = 6/16 = 0.375. Six drawn differences: the count over
    all 64 assignments, enumerated here. Five seeds all one way get the least
    p, 2/32 = 0.0625, which never reaches 0.05 (the t p-value does)."""
    def p_of(differences):
        return statistics.paired_difference(np.add(0.5, differences), [0.5] * len(differences))

    assert p_of([0.01, 0.02, 0.03]).sign_flip_p == pytest.approx(0.25)
    assert p_of([0.01, 0.02, 0.03, -0.01]).sign_flip_p == pytest.approx(0.375)
    drawn = np.random.default_rng(5).normal(0.002, 0.01, 6)
    sums = [abs(np.dot(signs, drawn)) for signs in itertools.product((1, -1), repeat=6)]
    expected = sum(total >= abs(drawn.sum()) - 1e-12 for total in sums) / 64
    assert p_of(drawn).sign_flip_p == pytest.approx(expected)
    assert statistics.smallest_sign_flip_p(5) == 0.0625
    five = p_of([-0.01, -0.012, -0.008, -0.011, -0.009])
    assert five.sign_flip_p == pytest.approx(0.0625) and five.p_value < 0.05


def test_the_sign_flip_p_above_sixteen_seeds_is_a_seeded_monte_carlo():
    """20 differences of one sign: a random assignment reaches |mean| only
    with all signs alike (2 / 2^20 a draw, so almost surely never in 9999
    draws); scipy counts the observed signs as one: p = 2 (0 + 1) / 10000,
    not the exact 2 / 2^20 = 1.9e-6."""
    paired = statistics.paired_difference(np.linspace(0.29, 0.28, 20), [0.3] * 20, seed=4)
    assert paired.sign_flip_p == pytest.approx(2 / 10000)


def test_identical_differences_are_not_estimable():
    """0.11 - 0.10, 0.12 - 0.11, 0.13 - 0.12 are 1 point each but differ by
    1e-17 in floats: a t test of them gives p ~ 0 and an interval 1e-17 wide,
    precision nothing measured. No spread: no interval, no t p-value, a note;
    the sign-flip p is 2/8 (3 seeds, one sign). All differences 0: every
    assignment reaches |mean| = 0, p = 1. A spread-free over_seeds has std 0
    and no "x to x" interval."""
    paired = statistics.paired_difference([0.11, 0.12, 0.13], [0.10, 0.11, 0.12])
    assert (paired.low, paired.high, paired.p_value) == (None, None, None)
    assert paired.note.startswith("every seed gave the same difference")
    assert paired.sign_flip_p == pytest.approx(0.25)
    assert statistics.decision(paired, 0.05) == "inconclusive"
    assert statistics.verdict(paired, "a", "b") == (
        "a has 1.0 points more error than b in every one of 3 seeds (interval not "
        "estimable: no spread; sign-flip p = 0.25)")
    same = statistics.paired_difference([0.1, 0.2], [0.1, 0.2])
    assert same.p_value is None and same.sign_flip_p == 1.0
    assert "None" not in statistics.verdict(same, "a", "b")
    assert statistics.over_seeds([0.3, 0.3, 0.3]) == statistics.OverSeeds(3, 0.3, 0.0)


def test_the_verdict_names_a_sign_flip_test_that_disagrees():
    """Seven seeds 0.1 point better and one 20 points better: mean -2.59
    points, std 7.04, se 2.49, t = -1.04, so the t interval holds 0; all 8
    signs alike give the sign-flip p 2/256 = 0.0078 (the least 8 seeds can
    give), which the verdict adds."""
    paired = statistics.paired_difference([0.299] * 7 + [0.1], [0.3] * 8)
    assert paired.low < 0 < paired.high
    assert statistics.verdict(paired, "a", "b").endswith(
        "8 seeds; without assuming normality, sign-flip p = 0.00781, the least 8 seeds "
        "can give)")


def test_the_decision_and_its_margin():
    """The worked example's interval (-3.77, -0.90) points is below 0:
    better; swapped, worse. d = (0.1, -0.1, 0.2, -0.2, 0) points: mean 0, std
    0.15811, se 0.070711, t(0.975, 4) = 2.776445, so the interval is +-0.19632
    points: equivalent within a 0.2-point margin, inconclusive within 0.19."""
    assert statistics.decision(statistics.paired_difference(CANDIDATE, BASELINE), 0) == "better"
    assert statistics.decision(statistics.paired_difference(BASELINE, CANDIDATE), 0) == "worse"
    small = statistics.paired_difference([0.201, 0.199, 0.202, 0.198, 0.2], [0.2] * 5)
    assert small.high == pytest.approx(0.0019632, abs=1e-7)
    assert statistics.decision(small, 0.002) == "equivalent"
    assert statistics.decision(small, 0.0019) == "inconclusive"
    for margin in (-0.01, 5, float("nan")):  # 5: points where a fraction is meant
        with pytest.raises(ValueError, match=r"`margin` must be a number in \[0, 1\)\. "
                                             rf"Received: margin={margin}"):
            statistics.decision(small, margin)


def test_the_detectable_difference_has_the_stated_power():
    """At the returned difference, 8000 simulated paired t tests of 8 seeds
    (sd 1 point) reject in 80% of them (binomial sd 0.45%, so [78%, 82%]);
    the normal approximation (1.96 + 0.84) sd / sqrt(8) would give ~67%. As
    n grows the t quantiles tend to z: (1.959964 + 0.841621) / sqrt(10^4)."""
    delta = statistics.detectable_difference(0.01, 8)
    rng = np.random.default_rng(2)
    draws = rng.normal(delta, 0.01, (8000, 8))
    t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / math.sqrt(8))
    rejected = np.mean(np.abs(t) > stats.t.ppf(0.975, 7))
    assert 0.78 <= rejected <= 0.82, rejected
    assert statistics.detectable_difference(1.0, 10_000) == pytest.approx(0.02801585, rel=1e-3)
    assert statistics.detectable_difference(0.01, 1) is None
    assert statistics.detectable_difference(0.0, 8) is None
    with pytest.raises(ValueError, match="Received: power=0.01"):
        statistics.detectable_difference(0.01, 8, power=0.01)


def test_the_seeds_that_would_resolve_a_comparison():
    """d = (-1, 0, -2) points: m = -1, s = 1 point; |m| > margin 0.5, so 0
    must leave the interval: t(0.975, N - 1) / sqrt(N) < 1, which is
    2.5706 / sqrt(6) = 1.049 at N = 6 and 2.4469 / sqrt(7) = 0.925 at N = 7.
    d = (-0.9, 0.1, 1.1) points: m = 0.1, s = 1; within a 1-point margin the
    interval fits when 0.1 + t / sqrt(N) <= 1, i.e. t / sqrt(N) <= 0.9:
    0.925 at N = 7, 2.3646 / sqrt(8) = 0.836 at N = 8."""
    better = [-0.01, 0.0, -0.02]
    assert statistics.seeds_to_resolve(better, 0.005) == 7
    assert statistics.seeds_to_resolve(better, 0.005, limit=6) is None
    assert statistics.seeds_to_resolve([-0.009, 0.001, 0.011], 0.01) == 8
    assert statistics.seeds_to_resolve([-0.01, 0.01], 0.0) is None  # m = 0: never
    assert statistics.seeds_to_resolve([0.01, 0.01, 0.01], 0.005) is None  # no spread


def test_the_test_sets_own_interval():
    """0 wrong of 100: the exact interval is [0, 1 - 0.025^(1/100)] =
    [0, 0.036217]. 5 of 100: Clopper-Pearson's ends are where P(X <= 5) and
    P(X >= 5) under Binomial(100, p) fall to 2.5%; standard error
    sqrt(0.05 * 0.95 / 100) = 0.021794. 0.0523 on 1000 examples is 52 wrong."""
    none_wrong = statistics.test_set_interval(0.0, 100)
    assert (none_wrong.low, none_wrong.high) == (0.0, pytest.approx(1 - 0.025 ** 0.01))
    five = statistics.test_set_interval(0.05, 100)
    assert stats.binom.cdf(5, 100, five.high) == pytest.approx(0.025)
    assert stats.binom.sf(4, 100, five.low) == pytest.approx(0.025)
    assert five.standard_error == pytest.approx(0.0217945, abs=1e-7) and five.examples == 100
    rounded = statistics.test_set_interval(0.0523, 1000)
    assert rounded.high == statistics.test_set_interval(0.052, 1000).high
    with pytest.raises(ValueError, match="Received: examples=0"):
        statistics.test_set_interval(0.05, 0)


def test_the_paired_ratio_of_costs():
    """Log ratios (0.1, 0.2, 0.3): mean 0.2, std 0.1, se 0.057735, t(0.975, 2)
    = 4.302653, so the ratio is e^0.2 = 1.221403 and its interval
    e^(0.2 +- 0.248414) = (0.952739, 1.565826), which holds 1; shifted by 0.2,
    (1.163679, ...) does not. Identical ratios: no interval."""
    baseline = [100.0, 120.0, 90.0]
    ratio = statistics.paired_ratio(np.multiply(baseline, np.exp([0.1, 0.2, 0.3])), baseline)
    assert ratio.ratio == pytest.approx(1.221403, abs=1e-6)
    assert (ratio.low, ratio.high) == (pytest.approx(0.952739, abs=1e-6),
                                       pytest.approx(1.565826, abs=1e-6))
    assert not ratio.excludes_one
    slower = statistics.paired_ratio(np.multiply(baseline, np.exp([0.3, 0.4, 0.5])), baseline)
    assert slower.low == pytest.approx(1.163679, abs=1e-6) and slower.excludes_one
    same = statistics.paired_ratio([0.3, 0.6, 0.9], [0.1, 0.2, 0.3])
    assert same.ratio == pytest.approx(3.0) and (same.low, same.high) == (None, None)
    assert same.note and not same.excludes_one
    with pytest.raises(ValueError, match=r"`baseline` must hold positive .*baseline=\[1.0, 0.0\]"):
        statistics.paired_ratio([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="at least 2. Received: 1 and 1"):
        statistics.paired_ratio([1.0], [2.0])


def test_no_evidence_few_seeds_and_degenerate_cases():
    paired = statistics.paired_difference([0.10, 0.13, 0.11], [0.11, 0.12, 0.115])
    assert statistics.verdict(paired, "a", "b").startswith(
        "no evidence of a difference between a and b at this budget")
    two = statistics.paired_difference([0.10, 0.12], [0.12, 0.15])
    assert two.bca_low is None and two.n == 2  # BCa needs BCA_MIN_SEEDS (10)
    assert statistics.few_seeds_warning(4).startswith("only 4 seeds")
    assert statistics.few_seeds_warning(5) is None
    assert statistics.over_seeds([0.2]) == statistics.OverSeeds(1, 0.2)
    with pytest.raises(ValueError, match="the same seeds, at least 2. Received: 2 and 3"):
        statistics.paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"errors in \[0, 1\].*Received: errors=\[1.5\]"):
        statistics.over_seeds([1.5])
