"""Errors over seeds, honestly: a summary per candidate, the paired difference
against a baseline and what it allows one to decide, with scipy.stats.

    summary = over_seeds([0.052, 0.049, 0.055])     # mean, std, 95% t interval
    paired = paired_difference(candidate_errors, baseline_errors)
    print(verdict(paired, "pyramidnet110_a48_sepdrop", "current.keras"))
    # pyramidnet110_a48_sepdrop has 1.3 points less error than current.keras
    # (95% CI 0.4 to 2.2, 5 seeds; without assuming normality, sign-flip
    # p = 0.0625, the least 5 seeds can give)
    decision(paired, margin=0.01)   # "better", "worse", "equivalent", "inconclusive"

Seed s of every candidate sees the same split, data order and augmentation,
so the errors pair by seed: the interval is of the mean of the per-seed
differences d_s = e_candidate(s) - e_baseline(s), not of two independent
means (pairing removes what the seeds share). The t interval is
`mean(d) +- t(0.975, n - 1) * std(d) / sqrt(n)`; it assumes the mean is near
normal, which a few seeds cannot check. Beside it:
- the exact sign-flip permutation test (`sign_flip_p`): with no difference,
  d_s and -d_s are equally likely, so p is the share of the 2^n sign
  assignments whose |mean| reaches the observed one. It assumes only that
  symmetry, and cannot go below 2 / 2^n: 0.0625 with 5 seeds, never 0.05;
- the bias-corrected and accelerated bootstrap (BCa): a large-sample method,
  too narrow with few seeds (its 95% interval covered ~84.5% of 5 normal
  pairs, the t interval 95%), so it is given from BCA_MIN_SEEDS seeds on.
When every seed gives the same difference there is no spread to estimate an
interval or a t p-value from: they are None, with a `note`, never a
zero-width interval with p = 0. Only seed variance is in these intervals:
`test_set_interval` is the test set's own sampling error of one error.
Costs compare as ratios (`paired_ratio`); `detectable_difference` and
`seeds_to_resolve` plan seeds. Errors are fractions; sentences speak points.
"""

import dataclasses
import math
import warnings

import numpy as np

from keras_pyramid.utils import checks

# scipy is imported where it is used: it comes with the `compare` extra, and
# report.py imports this module for FEW_SEEDS alone.

CONFIDENCE = 0.95
FEW_SEEDS = 5  # below this, an interval over seeds is wide and itself uncertain
BCA_MIN_SEEDS = 10  # with 5 pairs BCa's 95% interval covered ~84.5% (normal data)
BOOTSTRAP_RESAMPLES = 9999
EXACT_SIGN_FLIPS = 16  # up to 2^16 = 65,536 assignments enumerated; Monte Carlo above
SIGN_FLIP_RESAMPLES = 9999
# A smaller spread is float rounding (0.11 - 0.10 and 0.13 - 0.12 differ by
# 1e-17), not seeds that disagree: errors move in steps of 1 / examples.
NO_SPREAD = 1e-12
NO_SPREAD_NOTE = "every seed gave the same difference: no spread to estimate an interval from"


@dataclasses.dataclass(frozen=True)
class OverSeeds:
    """n errors: their mean, sample standard deviation (ddof 1) and the t
    interval of the mean (None for the spread and interval of one seed; std
    0.0 and no interval when every seed gave the same error)."""

    n: int
    mean: float
    std: float = None
    low: float = None
    high: float = None


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Per-seed differences candidate - baseline, their mean, the paired t
    interval and p-value (None, with `note`, when every difference is the
    same), the BCa bootstrap interval (None below BCA_MIN_SEEDS seeds or with
    no spread) and the two-sided sign-flip p-value (always)."""

    differences: tuple
    mean: float
    low: float
    high: float
    p_value: float
    bca_low: float = None
    bca_high: float = None
    sign_flip_p: float = None
    note: str = None

    @property
    def n(self):
        return len(self.differences)


@dataclasses.dataclass(frozen=True)
class BinomialInterval:
    """The sampling error of one error rate e = k / examples of a test set:
    the Clopper-Pearson interval of the true rate and sqrt(e (1 - e) / examples)."""

    low: float
    high: float
    standard_error: float
    examples: int


@dataclasses.dataclass(frozen=True)
class PairedRatio:
    """Per-pair ratios candidate / baseline of a cost, their geometric mean
    exp(mean(log r)) and the t interval of mean(log r), exponentiated (None,
    with `note`, when every pair gave the same ratio)."""

    ratios: tuple
    ratio: float
    low: float = None
    high: float = None
    note: str = None

    @property
    def excludes_one(self):
        return self.low is not None and (self.high < 1 or self.low > 1)


def over_seeds(errors, confidence=CONFIDENCE):
    """The `OverSeeds` of one candidate's errors (one per seed)."""
    values = _checked_errors("errors", errors)
    mean = float(np.mean(values))
    if len(values) < 2:
        return OverSeeds(1, mean)
    if _no_spread(values):  # std 0: an "x to x" interval would claim certainty
        return OverSeeds(len(values), mean, 0.0)
    low, high, _ = _t_test(values, confidence)
    return OverSeeds(len(values), mean, float(np.std(values, ddof=1)), low, high)


def paired_difference(candidate, baseline, confidence=CONFIDENCE, seed=0):
    """The `PairedDifference` of `candidate`'s errors against `baseline`'s,
    paired by position (seed); at least 2 pairs. `seed`: the bootstrap's and,
    above EXACT_SIGN_FLIPS pairs, the sign-flip Monte Carlo's."""
    candidate = _checked_errors("candidate", candidate)
    baseline = _checked_errors("baseline", baseline)
    _check_pairs(candidate, baseline, "one error per seed, the same seeds")
    differences = candidate - baseline
    common = {"differences": tuple(differences.tolist()), "mean": float(np.mean(differences)),
              "sign_flip_p": _sign_flip_p(differences, seed)}
    t_test = _t_test(differences, confidence)
    if t_test is None:
        return PairedDifference(**common, low=None, high=None, p_value=None, note=NO_SPREAD_NOTE)
    enough = len(differences) >= BCA_MIN_SEEDS
    bca_low, bca_high = _bca(differences, confidence, seed) if enough else (None, None)
    return PairedDifference(**common, low=t_test[0], high=t_test[1], p_value=t_test[2],
                            bca_low=bca_low, bca_high=bca_high)


def smallest_sign_flip_p(n):
    """The least two-sided sign-flip p of n pairs, 2 / 2^n: only the observed
    signs and their mirror reach the observed |mean| (0.0625 for 5 seeds)."""
    return 2.0 / 2 ** checks.check_int("n", n, minimum=1)


def decision(paired, margin):
    """"better" (the interval of candidate - baseline is below 0: less error),
    "worse" (above 0), "equivalent" (inside [-margin, margin]) or
    "inconclusive", tested in that order; a not-estimable interval is
    "inconclusive". `margin`: the difference that does not matter, as a
    fraction (0.01 = 1 point)."""
    margin = _checked_margin(margin)
    if paired.low is None or paired.high is None:
        return "inconclusive"
    return _decision_of(paired.low, paired.high, margin)


def detectable_difference(std, n, confidence=CONFIDENCE, power=0.8):
    """The smallest true mean difference delta that a two-sided paired t test
    of `n` seeds at level a = 1 - confidence detects with probability `power`,
    the differences' standard deviation being `std`: with c = t(1 - a/2, n - 1)
    and T ~ noncentral t(n - 1, lam = delta sqrt(n) / std), the delta at which
    P(T > c) + P(T < -c) = power (brentq on lam); (c + t(power, n - 1)) std /
    sqrt(n) only approximates it. None for n < 2 or std 0 (nothing to plan
    from)."""
    from scipy import optimize, stats

    std = checks.check_number("std", std, minimum=0)
    n = checks.check_int("n", n, minimum=0)
    alpha = 1 - _checked_level("confidence", confidence)
    if not (checks.is_number(power) and alpha < power < 1):
        checks.fail("power", f"be a number in ({alpha:g}, 1): above the false-alarm rate", power)
    if n < 2 or std == 0:
        return None
    critical = stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(noncentrality):  # alpha - power < 0 at 0, rising with lam
        # scipy's far tail is NaN at 1 degree of freedom and a large lam: it is ~0 there.
        wrong_side = stats.nct.cdf(-critical, n - 1, noncentrality)
        return (stats.nct.sf(critical, n - 1, noncentrality)
                + (wrong_side if math.isfinite(wrong_side) else 0.0) - power)

    upper = critical + 1
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper) * std / math.sqrt(n))


def seeds_to_resolve(differences, margin, confidence=CONFIDENCE, limit=1000):
    """The number of seeds N (in all, N >= n) at which the comparison would be
    decided if the differences' mean m and std s stayed as observed: the least
    N whose interval m +- t(1 - a/2, N - 1) s / sqrt(N) `decision` calls
    better, worse or equivalent. The half-width h shrinks with N, so with
    |m| > margin (the interval holds m, never fits in +-margin) it is the
    first N with h < |m|; with |m| < margin the first with h < |m| (excludes
    0) or |m| + h <= margin (equivalent); never with m = margin = 0. n when
    already decided. None beyond `limit` seeds, or not estimable (fewer than
    2 differences, or no spread). A projection: new seeds move m and s."""
    from scipy import stats

    values = np.asarray(differences, dtype=np.float64).reshape(-1)
    if not np.all(np.abs(values) <= 1):
        checks.fail("differences", "hold differences of errors, in [-1, 1]", values.tolist())
    margin = _checked_margin(margin)
    alpha = 1 - _checked_level("confidence", confidence)
    limit = checks.check_int("limit", limit, minimum=2)
    if len(values) < 2 or _no_spread(values):
        return None
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    sizes = np.arange(len(values), limit + 1)
    halves = stats.t.ppf(1 - alpha / 2, sizes - 1) * std / np.sqrt(sizes)
    return next((int(size) for size, half in zip(sizes, halves)
                 if _decision_of(mean - half, mean + half, margin) != "inconclusive"), None)


def test_set_interval(error, examples, confidence=CONFIDENCE):
    """The `BinomialInterval` of an error measured on `examples` examples:
    k = round(error * examples) wrong, the exact (Clopper-Pearson) interval
    [Beta(a/2; k, n - k + 1), Beta(1 - a/2; k + 1, n - k)] and the standard
    error sqrt(e (1 - e) / n). The seed interval leaves this variance out."""
    from scipy import stats

    error = checks.check_number("error", error, minimum=0, maximum=1)
    examples = checks.check_int("examples", examples, minimum=1)
    level = _checked_level("confidence", confidence)
    wrong = round(error * examples)
    interval = stats.binomtest(wrong, examples).proportion_ci(level, method="exact")
    return BinomialInterval(float(interval.low), float(interval.high),
                            math.sqrt(error * (1 - error) / examples), examples)


def paired_ratio(candidate, baseline, confidence=CONFIDENCE):
    """The `PairedRatio` of a cost (seconds, images/s, latency: positive)
    of `candidate` against `baseline`, paired by seed or round; at least 2
    pairs. Costs scale, so their ratios average on the log scale."""
    candidate = _checked_costs("candidate", candidate)
    baseline = _checked_costs("baseline", baseline)
    _check_pairs(candidate, baseline, "one positive number per pair, the same pairs")
    logs = np.log(candidate) - np.log(baseline)
    ratios, ratio = tuple((candidate / baseline).tolist()), float(np.exp(np.mean(logs)))
    t_test = _t_test(logs, confidence)
    if t_test is None:
        return PairedRatio(ratios, ratio, note="every pair gave the same ratio: no spread to "
                                               "estimate an interval from")
    return PairedRatio(ratios, ratio, math.exp(t_test[0]), math.exp(t_test[1]))


def verdict(paired, candidate, baseline, confidence=CONFIDENCE):
    """The plain sentence: which has less error, by how many points, with the
    interval; or that the interval holds 0 (no evidence of a difference); or,
    with no spread, the difference of every seed and no interval. The
    sign-flip p is added where it disagrees with the t interval at this level."""
    if paired.low is None or paired.high is None:
        return _not_estimable_verdict(paired, candidate, baseline)
    points = [100 * value for value in (paired.mean, paired.low, paired.high)]
    seeds = f"{paired.n} seeds{_sign_flip_remark(paired, confidence)}"
    level = f"{confidence:.0%}"
    if paired.low <= 0 <= paired.high:
        return (f"no evidence of a difference between {candidate} and {baseline} at this "
                f"budget ({points[0]:+.1f} points, {level} CI {points[1]:+.1f} to "
                f"{points[2]:+.1f}, {seeds})")
    if paired.mean < 0:
        return (f"{candidate} has {-points[0]:.1f} points less error than {baseline} "
                f"({level} CI {-points[2]:.1f} to {-points[1]:.1f}, {seeds})")
    return (f"{candidate} has {points[0]:.1f} points more error than {baseline} "
            f"({level} CI {points[1]:.1f} to {points[2]:.1f}, {seeds})")


def few_seeds_warning(n):
    """The warning a comparison of `n` seeds carries, or None from FEW_SEEDS on."""
    if n >= FEW_SEEDS:
        return None
    return (f"only {n} seed{'s' if n != 1 else ''}: the intervals are wide and themselves "
            f"uncertain; {FEW_SEEDS} or more are needed to decide")


def _not_estimable_verdict(paired, candidate, baseline):
    """Every seed gave the same difference: say it, with no interval."""
    tail = "interval not estimable: no spread" + (
        "" if paired.sign_flip_p is None else f"; sign-flip p = {paired.sign_flip_p:.3g}")
    if abs(paired.mean) <= NO_SPREAD:
        return (f"no difference between {candidate} and {baseline} in any of {paired.n} "
                f"seeds ({tail})")
    more = "less" if paired.mean < 0 else "more"
    return (f"{candidate} has {abs(100 * paired.mean):.1f} points {more} error than "
            f"{baseline} in every one of {paired.n} seeds ({tail})")


def _sign_flip_remark(paired, confidence):
    """"; without assuming normality, sign-flip p = P" where the sign-flip
    test (rejects at p <= 1 - confidence) and the t interval (excludes 0)
    disagree; P is marked when it is the least n seeds can give."""
    if paired.sign_flip_p is None:
        return ""
    excludes = not paired.low <= 0 <= paired.high
    if (paired.sign_flip_p <= 1 - confidence) == excludes:
        return ""
    least = math.isclose(paired.sign_flip_p, smallest_sign_flip_p(paired.n))
    return (f"; without assuming normality, sign-flip p = {paired.sign_flip_p:.3g}"
            + (f", the least {paired.n} seeds can give" if least else ""))


def _decision_of(low, high, margin):
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    if -margin <= low and high <= margin:
        return "equivalent"
    return "inconclusive"


def _t_test(values, confidence):
    """(low, high, p) of the mean of `values`: mean +- t(1 - a/2, n - 1) std /
    sqrt(n), and the two-sided p of t = mean / (std / sqrt(n)) against 0; None
    with no spread (t would be 0 / 0 or a rounding error's huge quotient)."""
    from scipy import stats

    if _no_spread(values):
        return None
    test = stats.ttest_1samp(values, 0.0)
    interval = test.confidence_interval(confidence)
    return float(interval.low), float(interval.high), float(test.pvalue)


def _sign_flip_p(differences, seed):
    """Two-sided p of the sign-flip test of mean(d) = 0: the share of sign
    assignments d_s -> +-d_s with |mean| >= |mean(d)|. scipy's permutation_test
    flips signs for one sample (permutation_type "samples") and enumerates all
    2^n when n_resamples >= 2^n; above EXACT_SIGN_FLIPS pairs, a seeded Monte
    Carlo counting the observed signs as a draw: p = 2 (hits on the rarer
    side + 1) / (SIGN_FLIP_RESAMPLES + 1), never below 0.0002."""
    from scipy import stats

    exact = len(differences) <= EXACT_SIGN_FLIPS
    result = stats.permutation_test((differences,), np.mean, permutation_type="samples",
                                    vectorized=True, random_state=np.random.default_rng(seed),
                                    n_resamples=np.inf if exact else SIGN_FLIP_RESAMPLES)
    return float(result.pvalue)


def _bca(differences, confidence, seed):
    """The BCa bootstrap interval of the mean difference, or (None, None)
    where scipy cannot form it (it warns and returns NaN)."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample: NaN, handled below
        result = stats.bootstrap((differences,), np.mean, confidence_level=confidence,
                                 method="BCa", n_resamples=BOOTSTRAP_RESAMPLES,
                                 random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return None, None
    return float(low), float(high)


def _no_spread(values):
    return float(np.ptp(values)) <= NO_SPREAD


def _check_pairs(candidate, baseline, what):
    if len(candidate) != len(baseline) or len(candidate) < 2:
        raise ValueError(f"`candidate` and `baseline` must hold {what}, at least 2. "
                         f"Received: {len(candidate)} and {len(baseline)}")


def _checked_margin(margin):
    # Below 1: differences of errors lie in [-1, 1], and a margin of 1 or 5
    # is a point count mistaken for a fraction (0.01 is 1 point).
    return float(checks.check_number("margin", margin, minimum=0, below=1))


def _checked_level(argument, value):
    return float(checks.check_number(argument, value, positive=True, below=1))


def _checked_errors(argument, errors):
    values = np.asarray(errors, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        checks.fail(argument, "hold errors in [0, 1], at least one",
                    np.asarray(errors).reshape(-1).tolist())
    return values


def _checked_costs(argument, costs):
    values = np.asarray(costs, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values) & (values > 0)):
        checks.fail(argument, "hold positive finite costs", values.tolist())
    return values
