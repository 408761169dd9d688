"""applications/train.py end to end, and learning on real CIFAR-10."""

import json
import os
import signal
import sys

import keras
import numpy as np
import pytest
from helpers.data import load_cifar10_npz
from helpers.paths import REPO, TINY_HPARAMS
from helpers.processes import killed_after_checkpoint, run_command
from helpers.programs import load_program
from helpers.run_directory import assert_run_directory_reloads

import keras_pyramid
from keras_pyramid.training import recipe

TRAIN = os.path.join(REPO, "applications", "train.py")


def train_command(run_dir, dataset, *extra):
    """train.py on the tiny network; `dataset` a folder or a tfds data dir (CIFAR-10)."""
    source = (["--dataset", f"folder:{dataset}"] if not os.path.isdir(
        os.path.join(dataset, "cifar10")) else ["--data-dir", dataset, "--no-download"])
    return [
        sys.executable, TRAIN, "--hparams", TINY_HPARAMS, *source,
        "--output-dir", str(run_dir), "--batch-size", "16", "--eval-steps", "1",
        "--verbose", "2", *extra,
    ]


def run(command, timeout=900):
    return run_command(command, timeout=timeout)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def test_small_sepdrop_network_learns_real_cifar10():
    """PyramidNet-8 (alpha 24, one unit per stage) + SepDrop, 3 epochs on
    2500 real training images, evaluated on 2000 real test images it never
    saw: chance is 10%, and the bar is 25% (measured here: 30.9% TensorFlow,
    30.9% JAX, 30.6% torch; 4000 images gave 33.6-34.4% at 1.6 times the
    cost). Seeded, so each backend repeats its own figure. Depth 20 learns
    no better in 2 epochs (34.9% torch, 4000 images) at 3-4 times the cost."""
    x_train, y_train, x_test, y_test = load_cifar10_npz()
    keras.utils.set_random_seed(0)
    model = keras_pyramid.PyramidNet(8, 24, regularization="sepdrop", seed=0, weight_decay=1e-4)
    # The schedule of a 4-epoch run trained 3 epochs (the third at the first
    # decayed rate): the setting of the figures above.
    plan = recipe.paper_recipe("cifar10", epochs=4, batch_size=64, learning_rate=0.05)
    model.compile(recipe.make_optimizer(plan, 2500 // 64), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train[:2500].astype("float32"), y_train[:2500], batch_size=64, epochs=3,
              verbose=0)
    _, accuracy = model.evaluate(x_test[:2000].astype("float32"), y_test[:2000], verbose=0)
    print(f"held-out accuracy after 3 epochs: {accuracy:.4f}")
    assert accuracy > 0.25, accuracy


def test_evaluate_writes_error_per_class_and_confusion_matrix(tmp_path, cifar10_sample_tfds_dir,
                                                              capsys):
    model = keras_pyramid.PyramidNet(8, 6, seed=0)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    # In this process: the program's work, without a Python and TensorFlow start-up.
    status = load_program(os.path.join(REPO, "applications", "evaluate.py")).main([
        path, "--dataset", "cifar10", "--data-dir", cifar10_sample_tfds_dir,
        "--max-examples", "64", "--batch-size", "32", "--tta", "flip"])
    assert status == 0
    report = read_json(tmp_path / "evaluation-test.json")
    assert report["examples"] == 64 and 0.0 <= report["error"] <= 1.0
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 64
    assert report["error"] == 1.0 - np.trace(matrix) / 64
    assert (tmp_path / "confusion-test.png").exists()
    printed = capsys.readouterr().out
    assert "per class: error (accuracy)" in printed  # an error column, labelled as one
    name, accuracy = next(iter(report["per_class_accuracy"].items()))
    assert f"{name:>12s} {100 * (1 - accuracy):6.2f}% ({100 * accuracy:.2f}%)" in printed


def test_a_killed_run_resumes_at_the_next_batch_as_if_never_stopped(tmp_path, image_folder,
                                                                    capsys):
    """On a folder of real images (5 classes, mixed formats and sizes, a
    stratified 10% hold-out), killed right after the checkpoint that ends epoch 1 (global step 5),
    a run resumes at epoch 2; killed again after the checkpoint of global step
    8 (epoch 2, step 3 of 5), it resumes inside epoch 2 without redoing epoch
    1, keeps what it wrote, ends with the weights of a run that was never
    interrupted (the drop-rate ramp over the first 9 of 10 steps continued
    where it stopped), and leaves a run directory a fresh process loads with
    the defaults."""
    options = ("--epochs", "2", "--steps-per-epoch", "5", "--checkpoint-steps", "2",
               "--drop-rate-schedule", "ramp:0.9", "--image-size", "16")
    # The uninterrupted run in this process (no start-up to pay: CI time).
    assert load_program(TRAIN).main(train_command(tmp_path / "straight", image_folder,
                                                  *options)[2:]) == 0

    run_dir = tmp_path / "interrupted"
    command = train_command(run_dir, image_folder, *options)

    def killed_after(global_step):
        killed = killed_after_checkpoint(TRAIN, global_step, command[2:], timeout=900)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        return killed

    killed_after(5)  # right after the checkpoint that ends epoch 1
    latest = read_json(run_dir / "checkpoint" / "latest.json")
    assert (latest["epoch"], latest["global_step"], len(latest["history"])) == (1, 5, 1)
    from_epoch_end = killed_after(8)  # resumes at an epoch's end, then dies mid-epoch 2
    assert "Resuming after epoch 1 of 2" in from_epoch_end.stdout  # flushed before the kill
    latest = read_json(run_dir / "checkpoint" / "latest.json")
    assert (latest["epoch"], latest["step"], len(latest["history"])) == (1, 3, 1)
    assert not (run_dir / "results.json").exists()

    resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming after epoch 1 and 3 steps of epoch 2 of 2" in resumed.stdout
    assert "Epoch 1/2" not in resumed.stdout  # a finished epoch is not redone
    history = read_json(run_dir / "history.json")
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[:1] == latest["history"]  # what was done is kept
    assert history[1]["resumed_at_step"] == 3 and "resumed_at_step" not in history[0]
    results = read_json(run_dir / "results.json")
    assert results["epochs"] == 2 and results["classes"] == 5
    assert results["evaluation_split"] == "hold-out of train (12 of 120)"
    assert results["final_error"] == pytest.approx(1.0 - history[-1]["val_accuracy"])
    record = read_json(run_dir / "data.json")
    assert record["class_names"] == ["dog", "frog", "horse", "ship", "truck"]
    assert record["image_size"] == [16, 16] and record["augment"] == "cifar"
    assert record["split"]["train"] == 108 and record["split"]["test"] is None
    assert record["statistics"]["from"] == "108 training images"
    for name in ("args.json", "model.keras", "history.csv", "curves.png", "tensorboard"):
        assert (run_dir / name).exists(), name
    with open(run_dir / "history.csv") as f:
        assert len(f.read().strip().splitlines()) == 3  # header + 2 epochs
    assert "Traceback" not in resumed.stderr and "shuffle=True" not in resumed.stderr
    assert "epoch 2/2: " in resumed.stdout and "left for the 0 remaining epochs" in resumed.stdout

    # The same batches, gates and learning rates: the same final model.
    final = [keras.saving.load_model(path / "model.keras", compile=False)
             for path in (tmp_path / "straight", run_dir)]
    for expected, got in zip(*(model.weights for model in final)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                                   keras.ops.convert_to_numpy(expected),
                                   rtol=1e-4, atol=1e-5, err_msg=expected.path)
    # Never retrained: a weight that changed after step 8 proves the resume trained.
    assert history[1]["val_loss"] == pytest.approx(
        read_json(tmp_path / "straight" / "history.json")[1]["val_loss"], rel=1e-4)
    assert_run_directory_reloads(run_dir, steps=2 * 5)

    # In this process from here on (no start-ups to pay: CI time).
    capsys.readouterr()
    assert load_program(TRAIN).main(command[2:]) == 0  # a finished run is not trained again
    assert "already finished" in capsys.readouterr().out

    # evaluate.py RUN_DIR needs nothing more: the run's hold-out, as the run had it.
    assert load_program(os.path.join(REPO, "applications", "evaluate.py")).main(
        [str(run_dir)]) == 0
    report = read_json(run_dir / "evaluation-validation.json")
    assert report["examples"] == 12 and report["image_size"] == [16, 16]
    assert report["error"] == pytest.approx(results["final_error"], abs=1e-6)


def test_fine_tuning_a_folder_from_a_keras_file_with_another_class_count(tmp_path,
                                                                        image_folder, capsys):
    """A 10-class network (32x32, its own statistics) fine-tuned onto the
    5-class folder at 16x16: the backbone comes over, the head is replaced,
    the statistics are the weights', the head trains alone for one epoch
    (the backbone does not move), noisy labels are recorded, and the run
    directory loads with the defaults in a fresh process."""
    source_model = keras_pyramid.PyramidNet(8, 12, classes=10, seed=1, mean=(100, 110, 120),
                                            std=(50, 60, 70))
    source_path = tmp_path / "source.keras"
    source_model.save(source_path)
    run_dir = tmp_path / "finetuned"
    command = train_command(run_dir, image_folder, "--weights", str(source_path),
                            "--freeze-backbone-epochs", "1", "--epochs", "2",
                            "--steps-per-epoch", "3", "--image-size", "16",
                            "--label-noise", "0.25", "--checkpoint-epochs", "1")
    # A first attempt that stopped before its first checkpoint left args.json.
    program = load_program(TRAIN)
    from keras_pyramid.training import experiment
    from keras_pyramid.utils.files import atomic_write_json

    config = experiment.resolved(program.run_config(program.parse_args(command[2:])[1]))
    run_dir.mkdir()
    atomic_write_json(str(run_dir / "args.json"), config.recorded())
    # In this process (the reload below is the fresh one): no start-up to pay.
    assert program.main(command[2:]) == 0
    out = capsys.readouterr().out
    assert "holds no checkpoint of this run" in out and "starting it over" in out
    assert "fine-tuning from" in out and " trainable and " in out
    assert "phase 2: head trained; now the whole network, epochs 2 to 2" in out
    assert "Resuming after epoch 1" not in out  # the same process went on
    results = read_json(run_dir / "results.json")
    assert (results["head"], results["recipe"], results["classes"]) == ("replaced", "finetune", 5)
    noise = results["label_noise"]
    assert noise["examples"] == 108 and 0 < noise["changed"] < 108 * 0.5
    assert noise["applies_to"] == "training labels only"
    statistics = read_json(run_dir / "data.json")["statistics"]
    np.testing.assert_allclose(statistics["mean"], [100, 110, 120])
    np.testing.assert_allclose(statistics["std"], [50, 60, 70])
    tuned = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert tuned.get_layer("predictions").units == 5
    assert tuple(tuned.inputs[0].shape[1:]) == (16, 16, 3)
    assert_run_directory_reloads(run_dir, steps=2 * 3, schedule="CosineDecay")


def test_an_interrupted_run_ends_with_one_line_and_the_command_that_resumes(monkeypatch,
                                                                             capsys):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("pure Python (the exit status and the line): runs once, under tensorflow")
    from keras_pyramid.training import experiment, interrupts

    def stopped(*args, **kwargs):
        raise interrupts.Interrupted(signal.SIGTERM, "stopped at epoch 2, step 5; the "
                                                     "checkpoint is in runs/x/checkpoint")

    monkeypatch.setattr(experiment, "run", stopped)
    status = load_program(TRAIN).main(["--output-dir", "runs/x", "--epochs", "3", "--restart"])
    assert status == 143
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(
        "error: interrupted by SIGTERM: stopped at epoch 2, step 5;"), errors
    assert errors[0].endswith("train.py --output-dir runs/x --epochs 3"), errors  # no --restart


def test_sigterm_to_a_training_process_checkpoints_and_exits_143(tmp_path, image_folder):
    """The real thing once (tensorflow): a scheduler's SIGTERM while the run
    trains ends it at the step's end, with a checkpoint and one line."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("one real signal to one process: the checkpoint path is tested on every "
                    "backend in tests/training/test_bad_day.py")
    from helpers.processes import start_command

    command = train_command(tmp_path / "run", image_folder, "--epochs", "50",
                            "--image-size", "16", "--verbose", "2")
    process = start_command(command)
    try:
        for line in process.stdout:  # the early estimate: training is under way
            if "s per step" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 143, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "interrupted by SIGTERM: stopped at" in errors[0], stderr[-3000:]
    assert "Resume with: " in errors[0] and "Traceback" not in stderr
    latest = read_json(tmp_path / "run" / "checkpoint" / "latest.json")
    assert latest["global_step"] >= 1


def test_a_failed_weights_fetch_leaves_no_run_directory(tmp_path, image_folder, monkeypatch,
                                                        capsys):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fetch fails before any tensor: runs once, under tensorflow")
    from helpers.served_weights import with_entry

    from keras_pyramid.models import presets
    from keras_pyramid.weights import cache

    entry = presets.TrainedWeights(
        dataset="cifar10", source="pytorchcv", source_name="pyramidnet8_a24_cifar10",
        file_name="none.pth", url=f"file://{tmp_path}/absent.zip", sha1="0" * 40, classes=10,
        input_size=32, mean=presets.IMGCLSMOB_CIFAR_MEAN, std=presets.IMGCLSMOB_CIFAR_STD,
        error=0.0, metric="top-1 error %", licence="test", parameters=0)
    monkeypatch.setattr(presets, "ARCHITECTURES", with_entry(entry))
    monkeypatch.setattr(cache, "cache_dir", lambda: str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit:
        load_program(TRAIN).main(["--model", "pyramidnet8_a24", "--weights", "cifar10",
                                  "--dataset", f"folder:{image_folder}", "--image-size", "16",
                                  "--output-dir", str(run_dir)])
    assert exit.value.code == 2
    assert "--weights:" in capsys.readouterr().err
    assert not run_dir.exists()
