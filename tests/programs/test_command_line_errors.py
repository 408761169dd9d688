"""Every command-line program refuses bad input with a one-line error naming
the flag and the value, exit status 2 and no traceback: train, evaluate,
export, search. One table drives it, and it covers every numeric flag:
negative, zero, NaN, inf, and larger than the data.

The programs run in this process (`main(argv)`): a traceback would fail the
test as an uncaught exception, and a hundred Python start-ups are saved. The
cases that load a model touch tensors and run on every backend; the others
are argument parsing and tfds metadata, pure Python, and run once.
"""

import json
import os
import shutil

import keras
import pytest
from helpers.data import write_image_folder
from helpers.models import tiny_model
from helpers.paths import REPO
from helpers.programs import refusal

from keras_pyramid.training.run_dir import RunLock

PROGRAMS = {
    "train": os.path.join(REPO, "applications", "train.py"),
    "evaluate": os.path.join(REPO, "applications", "evaluate.py"),
    "export": os.path.join(REPO, "applications", "export.py"),
    "search": os.path.join(REPO, "tuning", "search.py"),
    "convert_weights": os.path.join(REPO, "applications", "convert_weights.py"),
}

# (program, arguments, text the error must contain). DATA is the real tfds
# dir, EMPTY a folder without any dataset, FILE a plain file (a directory
# cannot be created under it), TINY a saved 16x16 model, MODEL a saved 32x32 one.
CASES = [
    ("train", ["--model", "pyramidnet7"], "--model: `name` must be a registered model name"),
    ("train", ["--hparams", "HPARAMS", "--model", "pyramidnet20_a48"], "give one of them"),
    ("train", ["--hparams", "EMPTY/none.json"], "--hparams:"),
    ("train", ["--output-dir", "FILE/run"], "--output-dir: FILE/run cannot be created"),
    ("train", ["--data-dir", "EMPTY"], "cifar10 is not prepared in EMPTY"),
    ("train", ["--epochs", "0"], "--epochs: must be an int >= 1, got 0"),
    ("train", ["--epochs", "-1"], "--epochs: must be an int >= 1, got -1"),
    ("train", ["--epochs", "nan"], "--epochs: must be an int, got 'nan'"),
    ("train", ["--batch-size", "0"], "--batch-size: must be an int >= 1, got 0"),
    ("train", ["--batch-size", "100000"],
     "--batch-size: the batch of 100000 exceeds the 50,000 training examples"),
    ("train", ["--batch-size", "64", "--validation-examples", "49990"],
     "--batch-size: the batch of 64 exceeds the 10 training examples"),
    # Not the batch size the user never gave: the hold-out that left 50 images.
    ("train", ["--validation-split", "0.9999"],
     "--validation-split: the batch of 8 exceeds the 5 training examples that "
     "validation=0.9999 leaves"),
    ("train", ["--lr", "0"], "--lr: must be a finite number > 0, got 0"),
    ("train", ["--lr", "-0.1"], "--lr: must be a finite number > 0, got -0.1"),
    ("train", ["--lr", "nan"], "--lr: must be a finite number, got nan"),
    ("train", ["--lr", "inf"], "--lr: must be a finite number, got inf"),
    ("train", ["--weight-decay=-1e-4"], "--weight-decay: must be a finite number >= 0"),
    ("train", ["--weight-decay", "nan", "--restart"], "--weight-decay: must be a finite number"),
    ("train", ["--weight-decay", "inf"], "--weight-decay: must be a finite number, got inf"),
    ("train", ["--drop-rate", "1.0"], "--drop-rate: must be in [0, 1), got 1.0"),
    ("train", ["--drop-rate", "-0.5"], "--drop-rate: must be in [0, 1), got -0.5"),
    ("train", ["--drop-rate", "nan"], "--drop-rate: must be a finite number, got nan"),
    ("train", ["--new-drop-rate", "1.0"], "--new-drop-rate: must be in [0, 1), got 1.0"),
    ("train", ["--drop-rate-schedule", "ramp:1.5"],
     "--drop-rate-schedule: must be 'constant' or 'ramp:FRACTION' with FRACTION in (0, 1], "
     "got 'ramp:1.5'"),
    ("train", ["--model", "pyramidnet20_a48_drop", "--new-drop-rate", "0.2"],
     "--new-drop-rate: `new_drop_rate` must come with regularization='sepdrop', the only "
     "regularizer with a gate on the new channels (regularization='drop'). Received: "
     "new_drop_rate=0.2"),
    ("train", ["--seed", "-1"], "--seed: must be an int in [0, 2**32 - 1], got -1"),
    ("train", ["--seed", "4294967296"], "--seed: must be an int in [0, 2**32 - 1]"),
    ("train", ["--steps-per-epoch", "0"], "--steps-per-epoch: must be an int >= 1, got 0"),
    ("train", ["--eval-steps", "-2"], "--eval-steps: must be an int >= 1, got -2"),
    ("train", ["--validation-examples", "-1"], "--validation-examples: must be an int >= 1"),
    ("train", ["--validation-examples", "60000"],
     "--validation-examples: `validation` as a count must be in [0, 50000)"),
    ("train", ["--validation-split", "1"], "--validation-split: must be in [0, 1), got 1"),
    ("train", ["--validation-split", "0.1", "--validation-examples", "5"],
     "argument --validation-examples: not allowed with argument --validation-split"),
    ("train", ["--image-size", "0"], "--image-size: must be N or H,W (ints >= 1), got '0'"),
    ("train", ["--image-size", "32,x"], "--image-size: must be N or H,W (ints >= 1)"),
    ("train", ["--augment", "autoaugment"], "--augment: invalid choice: 'autoaugment'"),
    ("train", ["--label-noise", "1"], "--label-noise: must be in [0, 1), got 1"),
    ("train", ["--recipe", "long"], "--recipe: invalid choice: 'long'"),
    ("train", ["--freeze-backbone-epochs", "2"], "give --weights to fine-tune from"),
    ("train", ["--dataset", "tfds:no_such_set"], "--dataset: `dataset` 'no_such_set' is not a "
                                                 "tfds dataset"),
    ("train", ["--dataset", "ONECLASS"], "must hold one subfolder per class, at least 2; found 1"),
    ("train", ["--dataset", "EMPTYCLASS"], "EMPTYCLASS/zebra has no images"),
    ("train", ["--dataset", "BADIMAGE"], "BADIMAGE/cat/broken.png is not a decodable image"),
    ("train", ["--dataset", "FOLDER", "--image-size", "3"],
     "--image-size: 3x3 cannot enter pyramidnet110_a48_sepdrop: its height and width must be "
     ">= 4"),
    ("train", ["--dataset", "FOLDER", "--weights", "EMPTY/none.keras"],
     "--weights: `weights`"),
    ("train", ["--checkpoint-epochs", "0"], "--checkpoint-epochs: must be an int >= 1, got 0"),
    ("train", ["--checkpoint-steps", "-5"], "--checkpoint-steps: must be an int >= 1, got -5"),
    ("train", ["--verbose", "3"], "--verbose: invalid choice: 3"),
    ("evaluate", ["EMPTY/model.keras", "--dataset", "cifar10"], "is not a .keras file"),
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--batch-size", "0"],
     "--batch-size: must be an int >= 1, got 0"),
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--batch-size", "inf"],
     "--batch-size: must be an int, got 'inf'"),
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--max-examples", "-1"],
     "--max-examples: must be an int >= 1, got -1"),
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--data-dir", "EMPTY"],
     "cifar10 is not prepared in EMPTY"),
    ("export", ["EMPTY/model.keras"], "no model file at"),
    ("export", ["TINY", "--version", "0"], "--version: must be an int >= 1, got 0"),
    ("export", ["TINY", "--version", "-3"], "--version: must be an int >= 1, got -3"),
    ("export", ["TINY", "--check-images", "-1"], "--check-images: must be an int >= 0, got -1"),
    ("search", ["--tuner", "grid"], "invalid choice: 'grid'"),
    ("search", ["--max-trials", "0"], "--max-trials: must be an int >= 1, got 0"),
    ("search", ["--epochs", "-1"], "--epochs: must be an int >= 1, got -1"),
    ("search", ["--steps-per-epoch", "0"], "--steps-per-epoch: must be an int >= 1, got 0"),
    ("search", ["--validation-examples", "0"], "--validation-examples: must be an int >= 1"),
    ("search", ["--validation-examples", "50000"], "Received: validation=50000"),
    ("search", ["--validation-steps", "0"], "--validation-steps: must be an int >= 1, got 0"),
    ("search", ["--retrain-epochs", "0"], "--retrain-epochs: must be an int >= 1, got 0"),
    ("search", ["--seed", "-1"], "--seed: must be an int in [0, 2**32 - 1], got -1"),
    ("search", ["--hp", "depth=21"], "depth='21'"),
    ("search", ["--hp", "drop_rate=1.5"], "drop_rate='1.5'"),
    ("search", ["--hp", "drop_rate=nan"], "drop_rate='nan'"),
    ("search", ["--hp", "learning_rate=inf"],
     "must be a finite number. Received: learning_rate='inf'"),
    ("search", ["--hp", "alpha=0"], "alpha='0'"),
    ("search", ["--hp", "batch_size=100000"],
     "--hp: `batch_size` 100000 exceeds the 45,000 training examples the hold-out of 5,000 "
     "leaves"),
    ("search", ["--directory", "FILE/x"], "cannot be created"),
    ("search", ["--data-dir", "EMPTY"], "cifar10 is not prepared in EMPTY"),
]
CASES += [
    ("train", ["--dataset", "npz:EMPTY/none.npz"],
     "--dataset: must be cifar10, cifar100, svhn, tfds:NAME[:VERSION], a folder"),
    ("train", ["--dataset", "npz:FILE"], "--dataset: FILE is not a readable .npz file"),
    ("train", ["--dataset", "npz:FILE", "--validation-examples", "10"],
     "--validation-examples: an npz dataset (device-resident CIFAR-size arrays) holds nothing "
     "out"),
    # The refusal says what an npz dataset does instead, not "take none" of "none".
    ("train", ["--dataset", "npz:FILE", "--augment", "none"],
     "--augment: an npz dataset (device-resident CIFAR-size arrays) always trains with the "
     "CIFAR augmentation (pad 4, crop, flip): leave this setting out. Received: augment='none'"),
    ("train", ["--mixed-precision", "half"], "--mixed-precision: invalid choice: 'half'"),
    ("evaluate", ["--weights", "cifar10"], "or --model NAME --weights W, one of them"),
    ("evaluate", ["--model", "pyramidnet8_a24", "--dataset", "cifar10"], "needs --weights"),
    ("evaluate", ["--model", "pyramidnet7", "--weights", "cifar10", "--dataset", "cifar10"],
     "--model 'pyramidnet7' is not a registered name"),
    ("evaluate", ["--model", "pyramidnet20_a48", "--weights", "cifar10", "--dataset", "cifar10"],
     "--weights cifar10: No trained weights for pyramidnet20_a48; these configurations"),
    ("evaluate", ["--model", "pyramidnet110_a48", "--weights", "imagenet", "--dataset",
                  "cifar10"], "it has ('cifar10', 'cifar100', 'svhn')"),
    ("convert_weights", ["EMPTY/none.pth", "--source", "pytorchcv", "--model", "pyramidnet8_a24",
                         "--dataset", "cifar10", "--output", "out.keras"],
     "checkpoint 'EMPTY/none.pth' is not a file"),
    ("convert_weights", ["FILE", "--source", "pytorchcv", "--model", "pyramidnet8_a24",
                         "--dataset", "cifar10", "--output", "out.txt"],
     "--output must end in .keras or .weights.h5, got 'out.txt'"),
    ("convert_weights", ["FILE", "--source", "caffe", "--model", "pyramidnet8_a24",
                         "--dataset", "cifar10", "--output", "out.keras"],
     "--source: invalid choice: 'caffe'"),
    ("convert_weights", ["FILE", "--source", "official", "--model", "pyramidnet7",
                         "--dataset", "cifar10", "--output", "out.keras"],
     "--model 'pyramidnet7' is not a registered name"),
    ("convert_weights", ["FILE", "--source", "official", "--model", "pyramidnet8_a24",
                         "--dataset", "cifar10", "--output", "out.keras"],
     "is not a loadable PyTorch file"),
]
# The first hour and the bad day (issue 24): empty names, absurd sizes, a
# run directory that is corrupt, in use, or finished with other arguments.
CASES += [
    ("train", ["--model", ""], "--model: must not be empty, got ''"),
    ("train", ["--output-dir", ""], "--output-dir: must not be empty, got ''"),
    ("train", ["--model", "pyramidnet110_a4"], "did you mean"),
    ("train", ["--image-size", "100000"],
     "--image-size: `image_size` must be an int >= 1 and <= 4096. Received: "
     "image_size=100000"),
    ("train", ["--distribute", "data-parallel"],
     "--distribute: data-parallel training needs more than one device"),
    ("train", ["--dataset", "npz:FILE", "--no-flip"],
     "--no-flip: an npz dataset (device-resident CIFAR-size arrays) always trains with the "
     "CIFAR"),
    ("train", ["--checkpoint-minutes", "-1"], "--checkpoint-minutes: must be a finite number"),
    ("train", ["--output-dir", "CORRUPT"], "--output-dir: CORRUPT/args.json is corrupt"),
    ("evaluate", ["CORRUPT"], "error: CORRUPT/args.json is corrupt"),
    ("train", ["--output-dir", "CHECKPOINTFILE"],
     "--output-dir: CHECKPOINTFILE/checkpoint is a file"),
    ("train", ["--output-dir", "LOCKED"], "--output-dir: LOCKED is in use by process"),
    ("train", ["--hparams", "HPARAMS", "--output-dir", "FINISHED", "--data-dir", "DATA",
               "--epochs", "7"], "holds a finished run with other arguments"),
]
# The cases that load a model (tensors): they run on every backend.
TOUCHES_TENSORS = {"TINY", "MODEL"}
# Evaluation data larger than the split: only knowable from the data, after the model loads.
CASES += [
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--batch-size", "20000"],
     "--batch-size 20000 exceeds the 10,000 images of the test split"),
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--max-examples", "10001"],
     "--max-examples 10001 exceeds the 10,000 images of the test split"),
    ("evaluate", ["MODEL", "--dataset", "cifar10", "--split", "validation"],
     "--split validation: cifar10 has no such split here"),
    ("evaluate", ["TINY", "--dataset", "FOLDER"], "the model has 10 classes, FOLDER has 5"),
    ("train", ["--dataset", "FOLDER", "--image-size", "16", "--weights", "TINY", "--model",
               "pyramidnet20_a48", "--batch-size", "4"],
     "--weights: `weights` is of another architecture: layer 'stage1_unit1_conv1' is "
     "[(3, 3, 16, 21)] in pyramidnet20_a48, [(3, 3, 16, 18)] in the source"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, cifar10_tfds_dir):
    root = tmp_path_factory.mktemp("cli")
    (root / "corrupt").mkdir()
    (root / "corrupt" / "args.json").write_text('{"model": "pyramidnet20_a4')
    (root / "checkpointfile").mkdir()
    (root / "checkpointfile" / "checkpoint").write_text("a file, not the checkpoint folder")
    shutil.copytree(os.path.join(REPO, "tests", "fixtures", "v0_1_0", "run_finished"),
                    root / "finished")
    (root / "empty").mkdir()
    (root / "file").write_text("a file, not a folder")
    tiny_model(None, classes=10).save(root / "tiny.keras")
    (root / "best_hparams.json").write_text(json.dumps(
        {"depth": 8, "alpha": 12, "regularization": "sepdrop", "drop_rate": 0.3,
         "learning_rate": 0.05, "batch_size": 16}))
    tiny_model(None, classes=10, input_shape=(32, 32, 3)).save(root / "model.keras")
    write_image_folder(root / "folder", range(5, 10), 3, odd=False)
    write_image_folder(root / "oneclass", [3], 2, odd=False)
    write_image_folder(root / "emptyclass", [3, 4], 2, odd=False)
    (root / "emptyclass" / "zebra").mkdir()
    write_image_folder(root / "badimage", [3, 4], 2, odd=False)
    (root / "badimage" / "cat" / "broken.png").write_bytes(b"no PNG inside")
    with RunLock(str(root / "locked")):  # held by this process, as by another run
        yield {"DATA": cifar10_tfds_dir, "EMPTY": str(root / "empty"),
               "FILE": str(root / "file"), "CORRUPT": str(root / "corrupt"),
               "CHECKPOINTFILE": str(root / "checkpointfile"),
               "FINISHED": str(root / "finished"), "LOCKED": str(root / "locked"),
               "TINY": str(root / "tiny.keras"), "MODEL": str(root / "model.keras"),
               "HPARAMS": str(root / "best_hparams.json"), "ROOT": str(root),
               "FOLDER": str(root / "folder"), "ONECLASS": str(root / "oneclass"),
               "EMPTYCLASS": str(root / "emptyclass"), "BADIMAGE": str(root / "badimage")}


def substitute(text, places):
    for name in ("DATA", "EMPTYCLASS", "EMPTY", "CHECKPOINTFILE", "FILE", "TINY", "MODEL",
                 "HPARAMS", "FOLDER", "ONECLASS", "BADIMAGE", "CORRUPT", "FINISHED", "LOCKED"):
        text = text.replace(name, places[name])
    return text


def runs_here(arguments):
    return bool(TOUCHES_TENSORS & set(arguments)) or keras.backend.backend() == "tensorflow"


@pytest.mark.parametrize("program, arguments, expected", CASES,
                         ids=[f"{p}:{' '.join(a)}" for p, a, _ in CASES])
def test_bad_input_gets_a_one_line_error(places, program, arguments, expected, capsys,
                                         monkeypatch):
    if not runs_here(arguments):
        pytest.skip("argument parsing and tfds metadata, pure Python: runs once, under "
                    "tensorflow")
    arguments = [substitute(a, places) for a in arguments]
    defaults = {
        "train": ["--data-dir", places["DATA"], "--no-download",
                  "--output-dir", os.path.join(places["ROOT"], "run")],
        "search": ["--data-dir", places["DATA"], "--no-download",
                   "--directory", os.path.join(places["ROOT"], "search")],
        "evaluate": ["--data-dir", places["DATA"]],
    }.get(program, [])
    monkeypatch.chdir(places["ROOT"])
    error = refusal(PROGRAMS[program], [*defaults, *arguments], capsys)
    assert substitute(expected, places) in error, error


def test_the_librarys_arguments_become_each_programs_flags():
    """The library's messages name arguments in backticks; each program
    turns those it has into its flags (by destination, and its renames), and
    leaves the others, which are not its flags, as they are."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("pure Python (argparse): runs once, under tensorflow")
    from helpers.programs import load_program

    train = load_program(os.path.join(REPO, "applications", "train.py"))
    compare = load_program(os.path.join(REPO, "applications", "compare.py"))
    import shared_flags

    message = ("not prepared (`download=False`): pass `data_dir`; run again with `restart`, "
               "or choose another `run_dir`; `batch_size` sets it; `learning_rate` too")
    train_parser = train.parse_args([])[0]
    assert shared_flags.with_flags(message, shared_flags.flags_of(train_parser, train.RENAMED)) == (
        "not prepared (--no-download): pass --data-dir; run again with --restart, or choose "
        "another --output-dir; --batch-size sets it; --lr too")
    compare_parser = compare.parse_args(["--output", "x", "--report-only"])[0]
    compare_flags = shared_flags.flags_of(compare_parser, compare.RENAMED)
    assert shared_flags.with_flags(message, compare_flags) == (
        "not prepared (--no-download): pass --data-dir; run again with `restart`, or "
        "choose another --output; --batch-size sets it; --lr too")
