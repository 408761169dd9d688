"""A comparison's accuracy at one label-noise rate: each candidate's error
over the seeds complete for every candidate, and each one against the
baseline, paired by seed, with its decision.

    entry = accuracy_at(candidates, settings, rows, noise=0.0)
    entry["against_baseline"]["pyramidnet20_a48_sepdrop"]["decision"]   # "worse"

Per candidate: the mean, the t interval over seeds (`statistics.over_seeds`)
and, beside it, the test set's own sampling error of the mean error (the
Clopper-Pearson interval on the examples evaluated): the seed interval
treats the test set as fixed, and on a small test split its own error can
be the larger. An as-is candidate is one evaluation, not a sample of
seeds: it gets no seed interval.

Against the baseline: the paired differences, their t interval and p, the
exact sign-flip p (distribution-free; it cannot go below 2 / 2^n), BCa only
from 10 seeds, the decision against the practical `margin` (better, worse,
equivalent, inconclusive), the smallest difference these seeds detect
(80% power) and, when inconclusive, the seeds that would decide it.
"""

import dataclasses

import numpy as np

from keras_pyramid.compare import statistics


def errors_of(rows, candidate, noise):
    """{seed: final error} of a candidate's finished cells at `noise`; an
    as-is candidate's one error (None until evaluated) stands for every seed."""
    if not candidate.trained:
        row = next(r for r in rows if r["candidate"] == candidate.name)
        return None if row["status"] != "evaluated" else row["final_error"]
    return {r["seed"]: r["final_error"] for r in rows
            if r["candidate"] == candidate.name and r["noise"] == noise
            and r["status"] == "finished"}


def accuracy_at(candidates, settings, rows, noise):
    """{"noise", "complete_seeds", "per_candidate", "against_baseline",
    "margin"} at one noise rate (see the module doc)."""
    by_name = {c.name: errors_of(rows, c, noise) for c in candidates}
    complete = [s for s in range(settings.seeds)
                if all(e is not None and (not isinstance(e, dict) or s in e)
                       for e in by_name.values())]

    def seeded(name):
        errors = by_name[name]
        return [errors[s] if isinstance(errors, dict) else errors for s in complete]

    examples = _evaluated_examples(rows)
    per_candidate = {}
    if complete:
        for candidate in candidates:
            per_candidate[candidate.name] = _summary(candidate, seeded(candidate.name), examples)
    against = {}
    if len(complete) >= 2:
        for name in by_name:
            if name != settings.baseline:
                against[name] = _against(seeded(name), seeded(settings.baseline), name,
                                         settings)
    return {"noise": noise, "complete_seeds": complete, "per_candidate": per_candidate,
            "against_baseline": against, "margin": settings.margin}


def _summary(candidate, errors, examples):
    """The candidate's errors over seeds (one evaluation for an as-is one),
    and the test set's own interval of the mean error."""
    summary = statistics.over_seeds(errors if candidate.trained else errors[:1])
    entry = {**dataclasses.asdict(summary), "errors": errors}
    if examples:
        test_set = statistics.test_set_interval(summary.mean, examples)
        entry["test_set"] = dataclasses.asdict(test_set)
    return entry


def _against(errors, baseline_errors, name, settings):
    paired = statistics.paired_difference(errors, baseline_errors)
    entry = {**dataclasses.asdict(paired), "differences": list(paired.differences),
             "verdict": statistics.verdict(paired, name, settings.baseline),
             "decision": statistics.decision(paired, settings.margin),
             "smallest_sign_flip_p": statistics.smallest_sign_flip_p(paired.n),
             "detectable_difference": None, "seeds_to_resolve": None}
    if paired.note is None:
        spread = float(np.std(paired.differences, ddof=1))
        entry["detectable_difference"] = statistics.detectable_difference(spread, paired.n)
    if entry["decision"] == "inconclusive":
        entry["seeds_to_resolve"] = statistics.seeds_to_resolve(paired.differences,
                                                                settings.margin)
    return entry


def _evaluated_examples(rows):
    """The examples each final evaluation saw (the first finished cell's count)."""
    counts = [r.get("evaluated_examples") for r in rows if r.get("evaluated_examples")]
    return counts[0] if counts else None
