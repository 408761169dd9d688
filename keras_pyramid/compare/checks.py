"""Everything a comparison refuses, before anything is written: the
candidates, the data (its classes, its size, the subset asked for) and the
output folder (a comparison writes only into a new or empty folder, or into
its own earlier comparison; never into a training run's or a search's).
"""

import dataclasses
import os

from keras_pyramid import export
from keras_pyramid.compare import candidates as candidates_module
from keras_pyramid.compare import cells as cells_module
from keras_pyramid.training import config as run_config
from keras_pyramid.training import foreign, run_data, run_layout
from keras_pyramid.training.run_dir import ConfigError

DEFAULT_SIDE = 224  # the comparison's size when neither the data nor a candidate fixes one


def check(settings):
    """The candidates, and (class names, image size, training examples
    available) of the data; ConfigError naming the argument for anything that
    cannot be compared, before anything is written."""
    try:
        candidates = candidates_module.parse_candidates(settings.candidates, settings.baseline)
    except ValueError as error:
        argument = "baseline" if str(error).startswith("`baseline`") else "candidates"
        raise ConfigError(argument, str(error)) from None
    if settings.seeds < 1:
        raise ConfigError("seeds", f"must be >= 1. Received: seeds={settings.seeds}")
    for rate in settings.noise_rates:
        if not 0 <= rate < 1:
            raise ConfigError("label_noise", f"each rate must be in [0, 1). Received: {rate}")
    config = cells_module.cell_config(cells_module.Cell(candidates[0], 0.0, 0), settings)
    source, splits = run_data.open_data(config)
    models = {}
    for candidate in candidates:
        try:
            models[candidate.name] = run_config.check(cells_module.cell_config(
                cells_module.Cell(candidate, 0.0, 0), settings)).model
        except ConfigError as error:
            raise ConfigError("candidates", f"{candidate.name}: {error}") from None
    size, size_from = comparison_image_size(settings, source, models)
    for candidate in candidates:  # every one at the one size, before any cell
        try:
            run_data.check_image_size(models[candidate.name], size)
        except ConfigError as error:
            raise ConfigError("candidates", f"{candidate.name} at the comparison's "
                                            f"{size[0]}x{size[1]} ({size_from}): "
                                            f"{error}") from None
        if not candidate.trained:
            _check_as_is_classes(candidate, source.num_classes)
    _check_class_names(source)
    available = len(run_data.open_data(dataclasses.replace(config, train_examples=None))[1].train)
    if settings.run.train_examples is not None and settings.run.train_examples > available:
        raise ConfigError("train_examples", f"{settings.run.train_examples:,} exceeds the "
                                            f"{available:,} training examples of "
                                            f"{settings.run.dataset}. Received: "
                                            f"train_examples={settings.run.train_examples}")
    return candidates, {"class_names": list(source.class_names), "image_size": list(size),
                        "image_size_from": size_from,
                        "given_sides": source.given_sides and list(source.given_sides),
                        "train_available": available, "final_examples": len(splits.final),
                        "final_evaluation": splits.final.description}


def comparison_image_size(settings, source, models):
    """((height, width), where from): the comparison's one input size. The
    size asked for; else the data's own (every image one size); else the
    baseline's own, or, for a baseline that takes any size, the first
    candidate's that has one (a registered network's design size, 224 for
    keras:NAME, a .keras file's fixed input); else ImageNet's 224."""
    if settings.run.image_size is not None:
        return tuple(settings.run.image_size), "as asked (`image_size`)"
    if source.image_size is not None:
        return tuple(source.image_size), "the data's own"
    order = [settings.baseline] + [name for name in models if name != settings.baseline]
    for name in order:
        model = models[name]
        fixed_file = model.kind == "file" and None not in model.file_input_size
        if model.ours or model.kind == "keras" or fixed_file:
            size = run_data.image_size_of(settings.run, source, model)
            role = "the baseline's" if name == settings.baseline else f"{name}'s"
            return tuple(size), f"{role} own; the data's images differ in size"
    return (DEFAULT_SIDE, DEFAULT_SIDE), ("ImageNet's, by default; the data's images differ in "
                                          "size and no candidate fixes one")


def _check_as_is_classes(candidate, classes):
    """An as-is model is scored as it is: it must have the data's classes."""
    model, head = foreign.load_classifier_file(candidate.model)
    if head.units != classes:
        raise ConfigError("candidates", f"{candidate.name} has {head.units} classes and the data "
                                        f"{classes}: an as-is model is scored as it is (train "
                                        f"it as a candidate, {candidate.model}, to replace its "
                                        f"head)")


def _check_class_names(source):
    """The served models carry the class names, one per line: checked before
    the first cell, not after all the training."""
    try:
        export.check_class_names(source.class_names, source.num_classes)
    except ValueError as error:
        raise ConfigError("dataset", f"a class name holds a line break, which a served "
                                     f"model's class list cannot: rename that class folder "
                                     f"({error})") from None


def check_output(output):
    """Refuses (ConfigError naming `output`) a file, a folder of another
    program's (a training run's records would be overwritten) and a folder
    of other files: a comparison writes only into a new or empty folder, or
    into its own earlier comparison."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise ConfigError("output", f"{output} is a file, not a folder: choose another")
    kind = run_layout.owner(output)
    if kind not in (None, run_layout.COMPARISON):
        raise ConfigError("output", f"{output} holds {kind}, not a comparison; nothing was "
                                    "written: a comparison goes into a new or empty folder, "
                                    "or its own earlier one")
    entries = os.listdir(output) if os.path.isdir(output) else []
    if kind is None and entries:
        raise ConfigError("output", f"{output} is not empty and holds no comparison (it holds "
                                    f"{run_layout.describe_entries(output, entries)}); nothing "
                                    "was written: choose a new or empty folder")


def make_output(output):
    """Creates `output`; ConfigError naming it when it cannot be created or written."""
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as error:
        raise ConfigError("output", f"{output} cannot be created: {error.strerror}") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise ConfigError("output", f"{output} is not writable")
