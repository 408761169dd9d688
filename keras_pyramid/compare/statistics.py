"""Errors over seeds, honestly: a summary per candidate and the paired
difference against a baseline, with intervals from scipy.stats.

    summary = over_seeds([0.052, 0.049, 0.055])     # mean, std, 95% t interval
    paired = paired_difference(candidate_errors, baseline_errors)
    print(verdict(paired, "pyramidnet110_a48_sepdrop", "current.keras"))
    # pyramidnet110_a48_sepdrop has 1.3 points less error than current.keras
    # (95% CI 0.4 to 2.2, 5 seeds)

Seed s of every candidate sees the same split, data order and augmentation,
so the errors pair by seed: the interval is of the mean of the per-seed
differences d_s = e_candidate(s) - e_baseline(s), not of two independent
means (pairing removes what the seeds share). The t interval is
`mean(d) +- t(0.975, n - 1) * std(d) / sqrt(n)` (scipy's `ttest_rel`); the
bias-corrected and accelerated bootstrap (`scipy.stats.bootstrap`, "BCa")
assumes no normality, and needs at least 3 seeds with differences that differ.
Errors are fractions; the sentences speak in percentage points.
"""

import dataclasses
import math
import warnings

import numpy as np

from keras_pyramid.utils import checks

CONFIDENCE = 0.95
FEW_SEEDS = 5  # below this, an interval over seeds is wide and itself uncertain
BOOTSTRAP_RESAMPLES = 9999


@dataclasses.dataclass(frozen=True)
class OverSeeds:
    """n errors: their mean, sample standard deviation (ddof 1) and the t
    interval of the mean (None for the spread and interval of one seed)."""

    n: int
    mean: float
    std: float = None
    low: float = None
    high: float = None


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Per-seed differences candidate - baseline, their mean, the paired t
    interval and p-value, and the BCa bootstrap interval (None where it
    cannot be computed: fewer than 3 seeds, or all differences equal)."""

    differences: tuple
    mean: float
    low: float
    high: float
    p_value: float
    bca_low: float = None
    bca_high: float = None

    @property
    def n(self):
        return len(self.differences)


def over_seeds(errors, confidence=CONFIDENCE):
    """The `OverSeeds` of one candidate's errors (one per seed)."""
    from scipy import stats

    values = _checked_errors("errors", errors)
    mean = float(np.mean(values))
    if len(values) < 2:
        return OverSeeds(1, mean)
    std = float(np.std(values, ddof=1))
    if std == 0:
        return OverSeeds(len(values), mean, 0.0, mean, mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean,
                                 scale=std / math.sqrt(len(values)))
    return OverSeeds(len(values), mean, std, float(low), float(high))


def paired_difference(candidate, baseline, confidence=CONFIDENCE, seed=0):
    """The `PairedDifference` of `candidate`'s errors against `baseline`'s,
    paired by position (seed); at least 2 pairs. `seed`: the bootstrap's."""
    from scipy import stats

    candidate = _checked_errors("candidate", candidate)
    baseline = _checked_errors("baseline", baseline)
    if len(candidate) != len(baseline) or len(candidate) < 2:
        raise ValueError(f"`candidate` and `baseline` must hold one error per seed, the same "
                         f"seeds, at least 2. Received: {len(candidate)} and {len(baseline)}")
    differences = candidate - baseline
    mean = float(np.mean(differences))
    if np.all(differences == differences[0]):  # no spread: the interval is the value
        return PairedDifference(tuple(differences.tolist()), mean, mean, mean,
                                1.0 if mean == 0 else 0.0)
    test = stats.ttest_rel(candidate, baseline)
    interval = test.confidence_interval(confidence)
    bca = _bca(differences, confidence, seed) if len(differences) >= 3 else (None, None)
    return PairedDifference(tuple(differences.tolist()), mean, float(interval.low),
                            float(interval.high), float(test.pvalue), *bca)


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


def verdict(paired, candidate, baseline, confidence=CONFIDENCE):
    """The plain sentence: which has less error, by how many points, with the
    interval; or that the interval holds 0 (no evidence of a difference)."""
    points = [100 * value for value in (paired.mean, paired.low, paired.high)]
    seeds = f"{paired.n} seeds"
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


def _checked_errors(argument, errors):
    values = np.asarray(errors, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        checks.fail(argument, "hold errors in [0, 1], at least one",
                    np.asarray(errors).reshape(-1).tolist())
    return values
