"""What a comparison compares: candidates named on the command line.

    pyramidnet110_a48_sepdrop           a registered model, trained from scratch
    pyramidnet110_a48_sepdrop@cifar10   ... fine-tuned from its trained weights
    keras:MobileNetV3Small              a keras.applications builder (weights=None)
    keras:EfficientNetB0@imagenet       ... from ImageNet weights
    current.keras                       the user's model, trained from its weights
    as-is:current.keras                 the user's model as it is: evaluated, not trained

Every trained candidate is trained by the same recipe and budget; an
as-is candidate is the model in production today, costed and scored on
the same split.
"""

import dataclasses
import os
import re

from keras_pyramid import applications
from keras_pyramid.training import foreign, specs
from keras_pyramid.weights import cache

AS_IS_PREFIX = "as-is:"
KINDS = ("registered", "keras", "file", "as-is")


DIGEST_CHARACTERS = 12  # of a file's SHA-256: its identity in the slug and in compare.json


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A parsed candidate: `name` as given, its `kind`, the run's `model`
    and `weights` (RunConfig fields), `digest` (a file's content, hex
    SHA-256 prefix; None for a builder, or a file recorded before digests)
    and `slug`, its directory name."""

    name: str
    kind: str
    model: str
    weights: str = None
    digest: str = None

    @property
    def trained(self):
        return self.kind != "as-is"

    @property
    def slug(self):
        """The candidate's directory name: its name, made a file name."""
        text = self.name
        if self.kind in ("file", "as-is"):
            # By content too: two current.keras from two folders are two candidates.
            stem = os.path.basename(self.model).removesuffix(foreign.KERAS_FILE_SUFFIX)
            text = f"{'as-is-' if self.kind == 'as-is' else 'file-'}{stem}"
            text += f"-{self.digest[:8]}" if self.digest else ""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def parse_candidate(text):
    """The `Candidate` of `text`; ValueError naming `candidates` and the value
    (an unknown name, a builder Keras lacks, a file that is no classifier)."""
    try:
        if text.startswith(AS_IS_PREFIX):
            path = text[len(AS_IS_PREFIX):]
            _check_classifier_file(path)
            return Candidate(text, "as-is", path, digest=file_digest(path))
        # The model's grammar is the runs' (training.specs), with our
        # models' trained-weights tag after an @ (NAME@cifar10).
        name, _, tag = text.partition("@")
        model = specs.parse_model(text if foreign.kind_of(text) != specs.REGISTERED else name)
        if model.kind == "file":
            return Candidate(text, model.kind, text, digest=file_digest(text))
        if model.kind == "keras":
            return Candidate(text, model.kind, text)
        if tag:
            applications.trained_weights(name, tag)
        return Candidate(text, model.kind, name, tag or None)
    except ValueError as error:
        raise ValueError(f"`candidates`: {error}. Received: {text!r}") from None


def recorded_candidate(text, digest=None):
    """The `Candidate` of `text` as a comparison recorded it, from the text
    alone: nothing is loaded (a file may have moved since it was compared)."""
    if text.startswith(AS_IS_PREFIX):
        return Candidate(text, "as-is", text[len(AS_IS_PREFIX):], digest=digest)
    kind = foreign.kind_of(text)
    if kind in ("keras", "file"):
        return Candidate(text, kind, text, digest=digest)
    name, _, tag = text.partition("@")
    return Candidate(text, kind, name, tag or None)


def file_digest(path):
    """The first DIGEST_CHARACTERS hex digits of the SHA-256 of the file at `path`."""
    return cache.file_digest(path, "sha256")[:DIGEST_CHARACTERS]


def _check_classifier_file(path):
    if not path.endswith(foreign.KERAS_FILE_SUFFIX):
        raise ValueError(f"an as-is candidate is a .keras file. Received: {path!r}")
    foreign.load_classifier_file(path)


def parse_candidates(texts, baseline):
    """The `Candidate`s of `texts` (at least 2, distinct directories) and the
    baseline's; ValueError naming `candidates` or `baseline`."""
    candidates = [parse_candidate(text) for text in texts]
    if len(candidates) < 2:
        raise ValueError(f"`candidates`: compare at least 2. Received: {list(texts)}")
    slugs = [c.slug for c in candidates]
    repeated = sorted({s for s in slugs if slugs.count(s) > 1})
    if repeated:
        raise ValueError(f"`candidates`: two candidates share the directory name "
                         f"{repeated[0]!r}. Received: {list(texts)}")
    if baseline not in texts:
        raise ValueError(f"`baseline` must be one of the candidates {list(texts)}. "
                         f"Received: baseline={baseline!r}")
    return candidates


def built_for(candidate, image_size, recipe_name):
    """The sentence the report gives when `candidate` was designed for another
    setting than this comparison's (image size, recipe), else None."""
    if candidate.kind == "keras":
        start = ("fine-tuned from its ImageNet weights" if candidate.name.endswith("@imagenet")
                 else "trained from scratch")
        return (f"{candidate.name} was designed for ImageNet (224x224) and its own training "
                f"recipe; here it is {start} by the {recipe_name} recipe on "
                f"{image_size[0]}x{image_size[1]} images")
    if candidate.kind in ("file", "as-is"):
        return (f"{candidate.name} was trained by its own recipe, which this comparison does "
                f"not know")
    variant = applications.PRESETS[candidate.model]["variant"]
    if variant == "cifar" and max(image_size) > 64:
        return (f"{candidate.name} is a CIFAR network (32x32); here it takes "
                f"{image_size[0]}x{image_size[1]} images")
    if variant == "imagenet" and max(image_size) < 128:
        return (f"{candidate.name} is an ImageNet network (224x224); here it takes "
                f"{image_size[0]}x{image_size[1]} images")
    return None
