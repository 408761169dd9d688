"""Where examples come from: tfds datasets by name and folders of images.

    source = open_source("cifar10", data_dir=DIR)          # tfds' cifar10
    source = open_source("tfds:mnist:3.0.1")               # any tfds image classification set
    source = open_source("folder:~/photos")                # PATH/CLASS/*.jpg, or train/ + test/

A `Source` knows its class names, its splits (`Part`s: labels in the split's
order, and a way to read the images) and, when every image has one size,
that size. Labels are read once, up front (for a folder from its layout,
for tfds without decoding images), so that hold-outs can be stratified and
noisy labels drawn before any image is decoded.

Folders follow `keras.utils.image_dataset_from_directory`'s conventions: one
subfolder per class, names in sorted order, images found recursively with
the extensions Keras accepts (bmp, gif, jpeg, jpg, png), decoded by
`tf.io.decode_image` into RGB whatever their mode (grayscale, RGBA, palette).
A folder holding `train/` plus `test/` (and/or `val/` or `validation/`) trees
of that shape gives those splits.
"""

import concurrent.futures
import dataclasses
import os
import socket

import numpy as np

from keras_pyramid.data.spec import TFDS_NAMES, parse_dataset

# Where tfds downloads each from: probed before a download so that a machine
# without network fails in seconds instead of hanging in tfds for minutes.
# Other datasets are probed at tfds' own bucket.
DOWNLOAD_HOSTS = {"cifar10": ("www.cs.toronto.edu", 443),
                  "cifar100": ("www.cs.toronto.edu", 443),
                  "svhn_cropped": ("ufldl.stanford.edu", 80)}
DEFAULT_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras' ALLOWLIST_FORMATS
VALIDATION_FOLDERS = ("val", "validation")


class DataNotFoundError(FileNotFoundError):
    """The dataset is not prepared where we looked and may not be downloaded."""


class BadImageError(ValueError):
    """A file of a folder source that cannot be decoded as an image."""


@dataclasses.dataclass(frozen=True)
class Part:
    """One split of a source: its labels, and how to read its images.

    Exactly one of `paths` (a folder's files) and `tfds_split` (a split of
    `Source.builder`) is set; `labels[i]` is the class of example i.
    """

    name: str
    labels: np.ndarray
    paths: tuple = None
    tfds_split: str = None

    def __len__(self):
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset: class names, its splits, and the size of its images.

    `spec` is the canonical way to name it again (`folder:` + an absolute
    path, or `tfds:NAME:VERSION`, or a short name); `image_size` is (height,
    width) when every image has that size, else None; `skipped_files` counts
    undecodable files left out (`skip_bad_images=True`); `skipped_folders`
    lists the hidden class folders left out (names starting with ".", as
    Keras skips them: `.ipynb_checkpoints`, or a class named `..evil`);
    `given_sides` is (smallest, largest) side of a folder's images as the
    user gave them (a run resized to another size says so), None for tfds.
    """

    spec: str
    class_names: tuple
    parts: dict
    image_size: tuple = None
    builder: object = None
    image_feature: str = None
    skipped_files: int = 0
    skipped_folders: tuple = ()
    given_sides: tuple = None

    @property
    def kind(self):
        return "tfds" if self.builder is not None else "folder"

    @property
    def num_classes(self):
        return len(self.class_names)

    def __post_init__(self):
        if "train" not in self.parts:
            raise ValueError(f"{self.spec} has no training split. Received splits: "
                             f"{sorted(self.parts)}")


def open_source(spec, data_dir=None, download=False, skip_bad_images=False):
    """The `Source` named by `spec`: cifar10, cifar100, svhn, `tfds:NAME[:VERSION]`,
    or a folder (`folder:PATH`, or a PATH that is a directory).

    Raises ValueError (one line, naming `dataset`) for a name that is none of
    these, DataNotFoundError for tfds data that is not prepared and may not
    be downloaded, and BadImageError for an undecodable file of a folder
    (unless `skip_bad_images`, which leaves such files out and counts them).
    """
    parsed = parse_dataset(spec)
    if parsed.kind == "tfds":
        return _tfds_source(parsed.text, parsed.name, parsed.version, data_dir, download)
    if parsed.kind == "folder":
        return folder_source(parsed.name, skip_bad_images=skip_bad_images)
    raise ValueError(f"`dataset` npz:PATH is read whole into memory for training only, not "
                     f"streamed for an evaluation: an npz run's final figures are in its "
                     f"results.json (its test arrays); to evaluate on other data, name a tfds "
                     f"dataset or a folder. Received: dataset={parsed.text!r}")


# ---------------------------------------------------------------- folders


def folder_source(path, skip_bad_images=False):
    """A folder with one subfolder per class, or `train/` + `test/` (`val/`) trees."""
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise ValueError(f"`dataset` folder does not exist. Received: dataset='folder:{path}'")
    children = {name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))}
    trees = {"train": "train"}
    if "train" in children and (children & {"test", *VALIDATION_FOLDERS}):
        trees.update({"test": "test"} if "test" in children else {})
        for name in VALIDATION_FOLDERS:
            if name in children:
                trees["validation"] = name
                break
        folders = {split: os.path.join(root, name) for split, name in trees.items()}
    else:
        folders = {"train": root}
    class_names = _class_folders(folders["train"])
    parts, skipped, sides = {}, 0, []
    hidden = tuple(path for folder in folders.values() for path in _hidden_folders(folder))
    _report_hidden(hidden)
    for split, folder in folders.items():
        names = _class_folders(folder)
        if names != class_names:
            raise ValueError(
                f"`dataset` {folder} has classes {list(names)}, but {folders['train']} has "
                f"{list(class_names)}: every split needs the same class folders")
        paths, labels = _list_images(folder, class_names)
        paths, labels, bad, image_sides = _decodable(paths, labels, skip_bad_images)
        skipped += bad
        sides += image_sides
        for label, name in enumerate(class_names):
            if not np.any(labels == label):
                raise ValueError(f"`dataset` class folder {os.path.join(folder, name)} has no "
                                 f"images ({', '.join(IMAGE_EXTENSIONS)})")
        parts[split] = Part(split, labels, paths=tuple(paths))
    return Source(f"folder:{root}", class_names, parts, image_size=None,
                  skipped_files=skipped, skipped_folders=hidden,
                  given_sides=(min(sides), max(sides)) if sides else None)


def _class_folders(folder):
    names = tuple(sorted(n for n in os.listdir(folder)
                         if os.path.isdir(os.path.join(folder, n)) and not n.startswith(".")))
    if len(names) < 2:
        raise ValueError(
            f"`dataset` folder {folder} must hold one subfolder per class, at least 2; "
            f"found {len(names)}{': ' + names[0] if names else ''}")
    return names


def _hidden_folders(folder):
    """The hidden subfolders of `folder` (names starting with "."): never a class."""
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n.startswith(".") and os.path.isdir(os.path.join(folder, n))]


def _report_hidden(hidden):
    """One line for the hidden folders left out, with the images they hold: a
    class folder named `..evil` once dropped 30 images without a word."""
    if not hidden:
        return
    images = sum(len(_images_under(path)) for path in hidden)
    shown = ", ".join(hidden[:3]) + (f" and {len(hidden) - 3} more" if len(hidden) > 3 else "")
    print(f"Skipped {len(hidden)} hidden folder{'s' if len(hidden) > 1 else ''} ({images} "
          f"images; a name starting with '.' is not a class): {shown}", flush=True)


def _images_under(folder):
    """Every image file under `folder`, recursively, in a stable order."""
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders.sort()
        found += [os.path.join(directory, f) for f in files
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _list_images(folder, class_names):
    paths, labels = [], []
    for label, name in enumerate(class_names):
        found = _images_under(os.path.join(folder, name))
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, np.int64)


def _decodable(paths, labels, skip_bad_images):
    """Drops (or refuses) files that are not images. PIL reads each file's
    header and verifies what it can (PNG checksums; JPEG headers), in threads:
    a few seconds for 100,000 files, and a bad file is named before training
    rather than failing an epoch later."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(_image_size, paths))
    good = np.array([size is not None for size in sizes], bool)
    if not good.all() and not skip_bad_images:
        first = paths[int(np.argmin(good))]
        raise BadImageError(
            f"`dataset` file {first} is not a decodable image ({int((~good).sum())} such "
            f"files in all); fix or remove it, or leave such files out (`skip_bad_images`)")
    sides = [side for size in sizes if size is not None for side in size]
    return ([p for p, ok in zip(paths, good) if ok], labels[good], int((~good).sum()),
            [min(sides), max(sides)] if sides else [])


def _image_size(path):
    """(width, height) of the image at `path` as its header gives it, None
    when it is not a decodable image."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
        return size
    except Exception:  # noqa: BLE001  PIL raises many types for a bad file
        return None


# ---------------------------------------------------------------- tfds


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def _tfds_source(spec, name, version, data_dir, download):
    builder = dataset_builder(name, version, data_dir, download, spec)
    features = builder.info.features
    image_key, label_key = _image_and_label(builder, spec)
    split_names = list(builder.info.splits) or ["train", "test"]  # mocked: no metadata
    parts = {}
    for split, wanted in (("train", "train"), ("validation", "validation"), ("test", "test")):
        if wanted in split_names:
            parts[split] = Part(split, _tfds_labels(builder, wanted, image_key, label_key),
                                tfds_split=wanted)
    shape = features[image_key].shape
    size = tuple(shape[:2]) if None not in shape[:2] else None
    canonical = spec if spec in TFDS_NAMES else f"tfds:{builder.name}:{builder.version}"
    return Source(canonical, tuple(features[label_key].names), parts, image_size=size,
                  builder=builder, image_feature=image_key)


def dataset_builder(name, version=None, data_dir=None, download=False, spec=None):
    """The tfds builder of a prepared dataset, or a DataNotFoundError that says
    where it was looked for and how to provide it.

    `data_dir=None` is tfds' default (which honours `TFDS_DATA_DIR`).
    """
    tfds = _tfds()
    spec = spec or name
    try:
        builder = tfds.builder(f"{name}:{version}" if version else name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"`dataset` {name!r} is not a tfds dataset (tfds.list_builders() "
                         f"lists them). Received: dataset={spec!r}") from None
    except (ValueError, AssertionError) as error:  # e.g. a version tfds does not have
        raise ValueError(f"`dataset` {spec!r}: {str(error).splitlines()[0]}") from None
    if builder.is_prepared() or _mocked(tfds):
        return builder
    looked_in = os.path.dirname(os.path.dirname(str(builder.data_dir)))
    howto = (
        f"Provide it with `data_dir` (or TFDS_DATA_DIR) pointing at a tfds data dir "
        f"that holds {name}/: prepare one on a machine with network "
        f"(`python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"`), copy "
        f"DIR/{name}/ to this machine and pass `data_dir` with the folder that holds it."
    )
    if not download:
        raise DataNotFoundError(
            f"{spec} is not prepared in {looked_in} and downloading is off "
            f"(`download=False`). {howto}")
    host = DOWNLOAD_HOSTS.get(name, DEFAULT_DOWNLOAD_HOST)
    if not _reachable(*host):
        raise DataNotFoundError(
            f"{spec} is not prepared in {looked_in} and {host[0]} is not "
            f"reachable, so it cannot be downloaded. {howto}")
    builder.download_and_prepare()
    return builder


def _mocked(tfds):
    """Inside `tfds.testing.mock_data` (the tests' fake data) builders are
    never prepared, yet read: its no-op download_and_prepare tells."""
    prepare = tfds.core.DatasetBuilder.download_and_prepare
    return getattr(prepare, "__name__", "") == "mock_download_and_prepare"


def _reachable(host, port, timeout=3.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _image_and_label(builder, spec):
    """The image and class-label features: the supervised keys when they are
    an Image and a ClassLabel, else the first feature of each kind."""
    tfds = _tfds()
    features = builder.info.features
    kinds = {key: type(feature) for key, feature in features.items()}
    supervised = builder.info.supervised_keys or (None, None)

    def pick(preferred, kind):
        if preferred in kinds and issubclass(kinds[preferred], kind):
            return preferred
        return next((k for k, t in kinds.items() if issubclass(t, kind)), None)

    image = pick(supervised[0], tfds.features.Image)
    label = pick(supervised[1], tfds.features.ClassLabel)
    if image is None or label is None or features[image].shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"`dataset` {spec} is not an image classification dataset: it needs an Image "
            f"feature (1, 3 or 4 channels) and a ClassLabel feature; its features are "
            f"{ {k: t.__name__ for k, t in kinds.items()} }. Received: dataset={spec!r}")
    return image, label


def _tfds_labels(builder, split, image_key, label_key):
    """A split's labels in order, without decoding its images."""
    tfds = _tfds()
    examples = builder.as_dataset(split=split, shuffle_files=False,
                                  decoders={image_key: tfds.decode.SkipDecoding()})
    labels = examples.map(lambda example: example[label_key]).batch(8192)
    return np.concatenate([np.asarray(b, np.int64) for b in labels.as_numpy_iterator()]
                          or [np.zeros(0, np.int64)])
