"""The one dataset grammar: what a `dataset` string names.

    cifar10 | cifar100 | svhn     tfds datasets by our short names
    tfds:NAME[:VERSION]           any tfds image classification set
    folder:PATH | PATH            a folder of class subfolders (PATH: an existing directory)
    npz:PATH                      arrays in the keras.datasets layout, kept on the device

`parse_dataset` is the only parser: the programs' argument type, the run's
default directory name and `open_source` all read a `DatasetSpec`.
"""

import dataclasses
import os

# Our short names -> tfds names (SVHN's 32x32 digits are tfds' svhn_cropped).
TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn_cropped"}
DATASETS = tuple(TFDS_NAMES)
KINDS = ("tfds", "folder", "npz")
GRAMMAR = (f"one of {DATASETS}, tfds:NAME[:VERSION], a folder of class subfolders "
           "(folder:PATH or an existing directory) or npz:PATH")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A parsed `dataset`: its `kind` (tfds, folder or npz), `name` (the tfds
    name, or the path), the tfds `version` (or None) and the `text` it was."""

    kind: str
    name: str
    version: str = None
    text: str = None

    @property
    def tag(self):
        """A run directory's short name: cifar10, a tfds name, a folder's or file's basename."""
        if self.text in TFDS_NAMES:
            return self.text
        base = os.path.basename(os.path.normpath(self.name))
        return base.removesuffix(".npz") if self.kind == "npz" else base


def parse_dataset(text):
    """The `DatasetSpec` of `text`; ValueError naming `dataset` when it is none
    of the grammar's forms (existence is checked where the data is opened)."""
    text = os.fspath(text)
    if text in TFDS_NAMES:
        return DatasetSpec("tfds", TFDS_NAMES[text], None, text)
    kind, separator, rest = text.partition(":")
    if separator and kind == "tfds":
        name, _, version = rest.partition(":")
        if name:
            return DatasetSpec("tfds", name, version or None, text)
    elif separator and kind in ("folder", "npz") and rest:
        return DatasetSpec(kind, rest, None, text)
    elif os.path.isdir(text):
        return DatasetSpec("folder", text, None, text)
    raise ValueError(f"`dataset` must be {GRAMMAR}. Received: dataset={text!r}")
