"""The one dataset grammar (`keras_pyramid.data.spec`): pure Python."""

import pytest

from keras_pyramid.data.spec import DatasetSpec, parse_dataset


@pytest.mark.parametrize("text, kind, name, version, tag", [
    ("cifar10", "tfds", "cifar10", None, "cifar10"),
    ("svhn", "tfds", "svhn_cropped", None, "svhn"),
    ("tfds:mnist:3.0.1", "tfds", "mnist", "3.0.1", "mnist"),
    ("tfds:imagenette/320px", "tfds", "imagenette/320px", None, "320px"),
    ("folder:~/photos/", "folder", "~/photos/", None, "photos"),
    ("npz:data/cifar.npz", "npz", "data/cifar.npz", None, "cifar"),
])
def test_each_form_parses_to_its_kind_and_short_name(text, kind, name, version, tag):
    spec = parse_dataset(text)
    assert spec == DatasetSpec(kind, name, version, text)
    assert spec.tag == tag


def test_an_existing_directory_is_a_folder_and_anything_else_is_refused(tmp_path):
    assert parse_dataset(str(tmp_path)).kind == "folder"
    for text in ("mnist", "tfds:", "npz:", str(tmp_path / "missing")):
        with pytest.raises(ValueError, match=f"Received: dataset={text!r}"):
            parse_dataset(text)
