"""The comparison's plots, drawn from its record (the dict saved as
comparison.json): PNGs written atomically into one folder.

    paths = write_plots(record, "comparisons/x/plots")
    # {"error": ".../error.png", "differences": ..., "learning_curves": ...,
    #  "noise": ..., "training_time": ..., "error_vs_time": ...,
    #  "error_vs_multiply_adds": ..., "pareto": ...}

The drawing is in plots_accuracy.py (error, differences, noise, learning
curves) and plots_costs.py (training time, error against cost, Pareto). A
plot the record holds nothing for is not written (and an older copy of it is
removed, so the folder matches the record): `noise` needs 2 label-noise
rates or more, `learning_curves` a candidate's curves, `pareto` a candidate
with ONNX Runtime figures, `differences` a paired comparison,
`training_time` and `error_vs_time` a trained cell, `error_vs_multiply_adds`
a candidate's count. The PNGs are drawn by Agg.
"""

import os

from keras_pyramid.compare import plots_accuracy, plots_costs
from keras_pyramid.utils.files import atomic_path

PLOTS = {"error": plots_accuracy.plot_error, "differences": plots_accuracy.plot_differences,
         "learning_curves": plots_accuracy.plot_learning_curves,
         "noise": plots_accuracy.plot_noise, "training_time": plots_costs.plot_training_time,
         "error_vs_time": plots_costs.plot_error_against_time,
         "error_vs_multiply_adds": plots_costs.plot_error_against_multiply_adds,
         "pareto": plots_costs.plot_pareto}


def write_plots(record, folder):
    """Writes the plots the record holds data for into `folder` (created),
    each as NAME.png, atomically; returns {name: path} of those written.
    A plot not drawn from this record is removed if an older run left it."""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name, draw in PLOTS.items():
        path = os.path.join(folder, f"{name}.png")
        figure = draw(record)
        if figure is None:
            if os.path.exists(path):
                os.remove(path)
            continue
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
        written[name] = path
    return written
