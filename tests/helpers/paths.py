"""Where things are: this checkout, the shared data beside it, the tiny hyperparameters."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


# A 3-unit PyramidSepDrop for the program tests (train.py --hparams): every
# code path of a run at a fraction of a registered model's cost.
TINY_HPARAMS = os.path.join(REPO, "tests", "tiny_hparams.json")
