"""Transfer must be shown, not assumed: pretrained features against none, on real CIFAR-10.

    KERAS_BACKEND=tensorflow nice -n 5 python benchmarks/transfer.py    # 14 min on 2 busy cores
    # the smallest configuration found with a clear margin (+3.6 points or more, 6 seeds):
    KERAS_BACKEND=tensorflow python benchmarks/transfer.py --pretrain-per-class 1000 \
        --pretrain-epochs 2 --shots 20 --epochs 15 --batch-size 20 --seeds 0   # ~1 min

1. Pretrain a small PyramidNet on CIFAR-10's classes 0-4 (airplane ...
   deer; `pretrain_per_class` images each from the first training half),
   save it as a `.keras` file and score it on those classes' 5,000 test
   images.
2. Per seed, draw `shots` images per class of classes 5-9 (dog ... truck,
   relabelled 0-4) from the second training half, and train twice on them:
   - fine-tuned: the same network built fresh, every backbone layer copied
     from the `.keras` file by `keras_pyramid.training.finetune.load_backbone`, and a
     new classifier (the scratch arm's initialization, see `transfer`);
   - scratch: that network as built.
   The budget is identical (`Config`): the same epochs, batch size, SGD
   with Nesterov momentum on the same cosine schedule
   (`recipe.make_optimizer`), weight decay, augmentation (the papers'
   pad-crop-flip) and seed (weights, gates, batch order, crops); every
   layer trains from the first step in both arms (no frozen phase).
3. Score both on classes 5-9's 5,000 test images, after the last epoch
   (never the best one).

Pretraining runs once (`pretrain_seed`); the seeds vary the few-shot draw,
the initialization and the data order. Results (per seed, mean and spread,
the margin fine-tuned - scratch, wall times, versions) go to a JSON file and
a Markdown table on stdout. Every setting is a flag (`--help`), so a smaller
configuration is one command line. Not a test.
"""

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)  # run from a checkout: `python benchmarks/transfer.py`

DATA = "/work/shared/data"
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)  # airplane, automobile, bird, cat, deer
TARGET_CLASSES = (5, 6, 7, 8, 9)  # dog, frog, horse, ship, truck


@dataclasses.dataclass(frozen=True)
class Config:
    depth: int = 8  # one basic unit per stage
    alpha: int = 24  # widths 24, 32, 40
    regularization: str = "sepdrop"  # or drop, shakedrop, none
    weight_decay: float = 1e-4  # coupled (an L2 penalty in the model), the paper's
    pretrain_per_class: int = 2000  # of classes 0-4, from the first training half
    pretrain_epochs: int = 10
    pretrain_batch_size: int = 128  # the paper's
    pretrain_learning_rate: float = 0.1  # the paper's from-scratch rate, cosine to 0
    pretrain_seed: int = 0
    shots: int = 100  # per class of classes 5-9, from the second training half
    epochs: int = 30  # fine-tuned and scratch alike
    batch_size: int = 50
    learning_rate: float = 0.05  # both arms, cosine to 0
    seeds: tuple = (0, 1, 2)


def load_cifar(directory):
    """(x_train halves, y_train halves, x_test, y_test) as NumPy arrays."""
    import numpy as np

    halves = [np.load(os.path.join(directory, f"cifar10_train_part{k}.npz")) for k in (1, 2)]
    test = np.load(os.path.join(directory, "cifar10_test.npz"))
    return ([h["x_train"] for h in halves], [h["y_train"] for h in halves],
            test["x_test"], test["y_test"])


def pick(x, y, classes, per_class=None, seed=0):
    """The images of `classes` relabelled 0..len-1: all, or `per_class` of
    each drawn with `seed`; in a seeded order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chosen = []
    for label in classes:
        members = np.flatnonzero(y == label)
        chosen.append(members if per_class is None else rng.permutation(members)[:per_class])
    chosen = rng.permutation(np.concatenate(chosen))
    relabel = np.zeros(10, np.int32)
    relabel[list(classes)] = np.arange(len(classes))
    return x[chosen], relabel[y[chosen]]


def stream(x, y, batch_size, seed):
    """Endless augmented batches: a seeded shuffle per epoch, and the
    papers' pad-crop-flip (`data.cifar_augment`) drawn from (seed, position)."""
    import tensorflow as tf

    from keras_pyramid import data

    examples = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
        len(x), seed=seed, reshuffle_each_iteration=True).repeat().enumerate()

    def augmented(position, example):
        image, label = example
        seeds = tf.stack([tf.constant(seed, tf.int64), position])
        return data.cifar_augment(tf.cast(image, tf.float32), seeds), label

    return examples.map(augmented, num_parallel_calls=tf.data.AUTOTUNE).batch(
        batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def network(config, seed):
    """The network both arms start from; the same weights for the same seed."""
    import keras

    import keras_pyramid

    keras.utils.set_random_seed(seed)
    return keras_pyramid.PyramidNet(config.depth, config.alpha,
                                    regularization=None if config.regularization == "none"
                                    else config.regularization, seed=seed,
                                    weight_decay=config.weight_decay,
                                    classes=len(TARGET_CLASSES))


def train(model, x, y, epochs, batch_size, learning_rate, seed):
    """Trains `model` on (x, y) with SGD + Nesterov on a cosine schedule;
    returns the seconds taken."""
    from keras_pyramid.training import recipe

    steps = len(x) // batch_size
    plan = recipe.Recipe(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         schedule="cosine")
    model.compile(optimizer=recipe.make_optimizer(plan, steps),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(stream(x, y, batch_size, seed), epochs=epochs, steps_per_epoch=steps,
              shuffle=False, verbose=0)  # the stream shuffles
    return time.perf_counter() - start


def accuracy(model, x, y):
    scores = model.evaluate(x.astype("float32"), y, batch_size=500, verbose=0, return_dict=True)
    return float(scores["accuracy"])


def pretrain(config, cifar, path):
    """Trains on classes 0-4, saves to `path`; returns its record."""
    (x_first, _), (y_first, _), x_test, y_test = cifar
    x, y = pick(x_first, y_first, PRETRAIN_CLASSES, config.pretrain_per_class,
                config.pretrain_seed)
    model = network(config, config.pretrain_seed)
    seconds = train(model, x, y, config.pretrain_epochs, config.pretrain_batch_size,
                    config.pretrain_learning_rate, config.pretrain_seed)
    model.save(path)
    return {"images": len(x), "seconds": seconds,
            "test_accuracy_classes_0_4": accuracy(model, *pick(x_test, y_test,
                                                                 PRETRAIN_CLASSES))}


def transfer(config, cifar, pretrained, seed):
    """Fine-tuned and scratch held-out accuracies for one seed."""
    from keras_pyramid.models.plan import CLASSIFIER
    from keras_pyramid.training import finetune

    (_, x_second), (_, y_second), x_test, y_test = cifar
    x, y = pick(x_second, y_second, TARGET_CLASSES, config.shots, seed)
    held_out = pick(x_test, y_test, TARGET_CLASSES)
    record = {"seed": seed}
    for arm in ("finetuned", "scratch"):
        model = network(config, seed)
        if arm == "finetuned":
            fresh_head = model.get_layer(CLASSIFIER).get_weights()
            loaded = finetune.load_backbone(model, None, pretrained)
            # 5 classes then and now: load_backbone copied the old classifier
            # too. The new task gets a new one, the scratch arm's initialization.
            model.get_layer(CLASSIFIER).set_weights(fresh_head)
            record["layers_copied"] = loaded["layers"] - (loaded["head"] == "copied")
        seconds = train(model, x, y, config.epochs, config.batch_size, config.learning_rate,
                        seed)
        record[arm] = accuracy(model, *held_out)
        record[f"{arm}_seconds"] = seconds
    record["margin"] = record["finetuned"] - record["scratch"]
    return record


def spread(values):
    return {"mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def versions():
    from keras_pyramid.utils import versions

    return versions.versions()


def table(report):
    rows = ["| seed | fine-tuned | scratch | margin (points) |", "|---|---|---|---|"]
    for r in report["seeds"]:
        rows.append(f"| {r['seed']} | {r['finetuned']:.3f} | {r['scratch']:.3f} | "
                    f"{100 * r['margin']:+.1f} |")
    s = report["summary"]
    rows.append(f"| mean (sd) | {s['finetuned']['mean']:.3f} ({s['finetuned']['sd']:.3f}) | "
                f"{s['scratch']['mean']:.3f} ({s['scratch']['sd']:.3f}) | "
                f"{100 * s['margin']['mean']:+.1f} (min {100 * s['margin']['min']:+.1f}) |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "seeds":
            parser.add_argument(flag, type=int, nargs="+", default=list(field.default))
        elif field.type is str:
            parser.add_argument(flag, default=field.default)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    parser.add_argument("--data", default=DATA, help="folder of the CIFAR-10 .npz files")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "transfer.json"))
    args = parser.parse_args(argv)
    config = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    config = dataclasses.replace(config, seeds=tuple(config.seeds))

    import keras

    start = time.perf_counter()
    cifar = load_cifar(args.data)
    with tempfile.TemporaryDirectory() as scratch:
        pretrained = os.path.join(scratch, "pretrained.keras")
        pretraining = pretrain(config, cifar, pretrained)
        print(f"pretrained on {pretraining['images']} images of classes 0-4 in "
              f"{pretraining['seconds']:.0f} s: test accuracy "
              f"{pretraining['test_accuracy_classes_0_4']:.3f}", flush=True)
        seeds = []
        for seed in config.seeds:
            seeds.append(transfer(config, cifar, pretrained, seed))
            print(f"seed {seed}: fine-tuned {seeds[-1]['finetuned']:.3f}, scratch "
                  f"{seeds[-1]['scratch']:.3f}", flush=True)
    images = config.shots * len(TARGET_CLASSES)
    steps = config.epochs * (images // config.batch_size)
    report = {
        "config": dataclasses.asdict(config), "backend": keras.backend.backend(),
        "budget": (f"each arm: {config.epochs} epochs of {images} images in batches of "
                   f"{config.batch_size} ({steps} steps), SGD Nesterov 0.9, lr "
                   f"{config.learning_rate} cosine to 0, weight decay {config.weight_decay}, "
                   f"pad-crop-flip, same seed"),
        "pretraining": pretraining, "seeds": seeds,
        "summary": {key: spread([r[key] for r in seeds])
                    for key in ("finetuned", "scratch", "margin")},
        "held_out": "CIFAR-10 test images of classes 5-9 (5,000)",
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "platform": platform.platform(), "versions": versions(),
        "wall_seconds": time.perf_counter() - start,
    }
    from keras_pyramid.utils.files import atomic_write_json

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    atomic_write_json(args.output, report)
    print(f"\n{report['budget']}; {report['backend']} backend\n")
    print(table(report))
    print(f"\nwall time {report['wall_seconds']:.0f} s; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
