"""A run's grammars, each parsed once at the edge into a spec object.

    model = parse_model("keras:MobileNetV3Small")     # ModelSpec(kind="keras", ...)
    model = parse_model(None, architecture={"depth": 20, "alpha": 48,
                                            "regularization": "sepdrop"})
    schedule = parse_schedule("ramp:0.3")              # ScheduleSpec("ramp", 0.3)

The dataset's grammar is `keras_pyramid.data.spec.parse_dataset` (a
`DatasetSpec`). A spec is checked when it is made, so everything after the
edge takes it as valid; each parser raises a ValueError that names its
argument (`model`, `schedule`) and the value received.

A `.keras` file is read once here, for the facts a run needs before it
builds the model (its input size); building the network reads it again,
once per run.
"""

import dataclasses
import os

from keras_pyramid import applications
from keras_pyramid.models import hparams
from keras_pyramid.training import foreign

# The models of ours, by name or by a search's architecture.
REGISTERED = "registered"
SCHEDULES = ("constant", "ramp")  # the drop-rate schedules (training.drop_schedule)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed model: `kind` is "registered" (ours, by name or by
    `architecture`), "keras" (`keras:NAME[@TAG]`) or "file" (a .keras image
    classifier); `text` the model as given (None for an architecture)."""

    kind: str
    text: str = None
    architecture: dict = None
    regularization: str = "none"  # our models' branch regularizer: none|drop|sepdrop|shakedrop
    variant: str = None  # our models' variant (cifar|imagenet); None for others
    keras_tag: str = None  # keras:NAME@TAG's trained-weights tag
    file_input_size: tuple = None  # a .keras file's (height, width), None for a free side

    @property
    def ours(self):
        return self.kind == REGISTERED

    @property
    def registered_name(self):
        """The registry name (for its trained weights), None for an architecture."""
        return self.text if self.ours and self.architecture is None else None

    @property
    def own_preprocessing(self):
        """Whether the model normalizes its input itself (a .keras file, ImageNet weights)."""
        return self.kind == "file" or self.keras_tag is not None

    @property
    def name(self):
        """The model's name in a directory name: a registered name, keras-NAME
        for keras:NAME, a .keras file's stem."""
        if self.architecture is not None:
            return hparams.model_name(self.architecture)
        if self.kind == "keras":
            return self.text.replace(":", "-").replace("@", "-")
        if self.kind == "file":
            return os.path.basename(self.text).removesuffix(foreign.KERAS_FILE_SUFFIX)
        return self.text


def parse_model(model, architecture=None):
    """The `ModelSpec` of `model` (a registered name, `keras:NAME[@TAG]` or a
    .keras path) or of a search's `architecture` ({depth, alpha,
    regularization}; `model` is then ignored). ValueError naming `model`."""
    if architecture is not None:
        return ModelSpec(REGISTERED, architecture=dict(architecture),
                         regularization=architecture["regularization"], variant="cifar")
    if not isinstance(model, str) or not model:
        raise ValueError(f"`model` must be a registered name, keras:NAME or a .keras file. "
                         f"Received: model={model!r}")
    kind = foreign.kind_of(model)
    if kind == "keras":
        return ModelSpec(kind, model, keras_tag=foreign.parse_keras_name(model)[1])
    if kind == "file":
        try:
            classifier, _ = foreign.load_classifier_file(model)
        except ValueError as error:
            raise ValueError(f"`model`: {error}") from None
        return ModelSpec(kind, model, file_input_size=foreign.input_size(classifier))
    preset = applications.PRESETS[applications.check_model_name(model)]
    return ModelSpec(kind, model, regularization=preset["regularization"] or "none",
                     variant=preset["variant"])


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """A parsed drop-rate schedule: `kind` "constant" (the papers) or "ramp"
    (linear from 0 to the target over the first `fraction` of the steps)."""

    kind: str
    fraction: float = None

    @property
    def constant(self):
        return self.kind == "constant"

    def __str__(self):
        return self.kind if self.fraction is None else f"{self.kind}:{self.fraction:g}"


def parse_schedule(schedule):
    """`"constant"` or `"ramp:FRACTION"` (FRACTION in (0, 1]) -> a `ScheduleSpec`."""
    kind, separator, argument = str(schedule).partition(":")
    if kind == "constant" and not separator:
        return ScheduleSpec(kind)
    if kind == "ramp" and argument:
        try:
            fraction = float(argument)
        except ValueError:
            fraction = None
        if fraction is not None and 0 < fraction <= 1:
            return ScheduleSpec(kind, fraction)
    raise ValueError("`schedule` must be 'constant' or 'ramp:FRACTION' with FRACTION in "
                     f"(0, 1]. Received: schedule={schedule!r}")
