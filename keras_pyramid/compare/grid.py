"""The cells on several GPUs or machines: KerasTuner's distributed mode.

Started as a search is (KERASTUNER_ORACLE_IP/PORT, KERASTUNER_TUNER_ID
`chief` on one process, `tuner0`, `tuner1`, ... on the others), each
worker takes cells from a grid over the cells' keys and trains them; the
chief only serves the grid. KerasTuner's distributed mode can skip a
combination (keras-tuner#596) or lose a trial (#915), so after the grid
the chief runs every cell that has no results.json itself: what counts is
the run directories, not the tuner's record. Without KERASTUNER_TUNER_ID
the cells run in this process, in order.
"""

import hashlib
import os

from keras_pyramid.compare import cells as cells_module
from keras_pyramid.compare import runner
from keras_pyramid.tuning import distributed

GRID_DIR = "grid"
OBJECTIVE = "final_error"


def run_grid(cells, settings, output, print_function=print, verbose=1):
    """Runs every unfinished cell: here, or spread over KerasTuner's workers
    then the missing ones here (on the chief). A worker returns when the
    grid is done; the caller reports only on the chief (or alone)."""
    if distributed.tuner_id() is None:
        runner.run_cells(cells, settings, output, print_function, verbose)
        return
    _grid_tuner(cells, settings, output, print_function, verbose).search()
    if distributed.tuner_id() == distributed.CHIEF:
        left = cells_module.missing(cells, output)
        if left:
            print_function(f"the grid left {len(left)} cells without results (KerasTuner "
                           f"skipped or lost them): running them here: "
                           f"{', '.join(cell.key for cell in left)}")
        runner.run_cells(left, settings, output, print_function, verbose)


def _grid_tuner(cells, settings, output, print_function, verbose):
    """A KerasTuner GridSearch whose trials are the cells (one hyperparameter,
    `cell`, the cell's key): a grid's trial runs `cells.run_cell`."""
    import keras_tuner as kt

    by_key = {cell.key: cell for cell in cells}

    def run_trial(trial):
        cell = by_key[trial.hyperparameters.get("cell")]
        results = runner.run_one(cell, settings, output, print_function, verbose)
        return {OBJECTIVE: results["final_error"]}

    space = kt.HyperParameters()
    space.Choice("cell", list(by_key))
    # The project is named by its cells: the same grid reloads (its finished
    # trials stay finished), an extended one starts a new project.
    digest = hashlib.sha256("\n".join(by_key).encode()).hexdigest()[:12]
    return distributed.trials_through(kt.GridSearch, run_trial)(
        hypermodel=None, objective=kt.Objective(OBJECTIVE, direction="min"),
        hyperparameters=space, tune_new_entries=False, max_trials=len(by_key),
        directory=os.path.join(output, GRID_DIR), project_name=f"cells-{digest}")
