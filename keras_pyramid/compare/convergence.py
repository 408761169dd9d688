"""Was a candidate still learning when its budget ran out? Its learning
curves over seeds, and one flag.

    summary = learning_curves([cell["curve"] for cell in finished_cells])
    summary["still_improving"]      # True: the ranking holds for this budget only

Each finished cell records its per-epoch error (`costs.learning_curve`). Over
a candidate's cells, epoch by epoch, the curve's mean and its spread (min and
max over the seeds) are kept. The flag reads the mean curve's last
`window = max(2, ceil(E / 3))` epochs: with `b` the least-squares slope of
error against epoch over that window, the candidate is still improving when

    -b * (window - 1) > STILL_FALLING

that is, when the fitted fall over the window exceeds half a point. One
epoch shows no trend: it is counted as still improving, since nothing says
it stopped.
"""

import math

import numpy as np

STILL_FALLING = 0.005  # half a point of error over the last third of the epochs


def learning_curves(curves):
    """{"epochs", "mean", "low", "high", "seeds", "still_improving",
    "fall_over_window"} of a candidate's curves (lists of {"epoch", "error"}),
    over the epochs every curve reached; None when there is none."""
    curves = [curve for curve in curves if curve]
    if not curves:
        return None
    shared = sorted(set.intersection(*({point["epoch"] for point in c} for c in curves)))
    if not shared:
        return None
    table = np.array([[_error_at(curve, epoch) for epoch in shared] for curve in curves])
    mean = table.mean(axis=0)
    fall = window_fall(shared, mean)
    return {"epochs": shared, "mean": mean.tolist(), "low": table.min(axis=0).tolist(),
            "high": table.max(axis=0).tolist(), "seeds": len(curves),
            "fall_over_window": fall, "still_improving": fall is None or fall > STILL_FALLING}


def window_fall(epochs, errors):
    """The least-squares fall of `errors` over the last max(2, ceil(E/3))
    epochs (positive: falling), or None with fewer than 2 epochs."""
    if len(epochs) < 2:
        return None
    window = max(2, math.ceil(len(epochs) / 3))
    slope = np.polyfit(np.asarray(epochs[-window:], float), np.asarray(errors[-window:]), 1)[0]
    return float(-slope * (window - 1))


def _error_at(curve, epoch):
    return next(point["error"] for point in curve if point["epoch"] == epoch)
