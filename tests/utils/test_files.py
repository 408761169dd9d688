"""keras_pyramid.utils.files: whole files or none, and the JSON that may be missing.

Pure Python: runs once, under tensorflow."""

import json
import os

import pytest
from helpers.backends import ONCE

from keras_pyramid.utils import files

pytestmark = ONCE


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk gone"):
        with files.atomic_path(str(target)) as temporary:
            with open(temporary, "w") as f:
                f.write("half a fi")
            raise RuntimeError("disk gone")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["record.json"]


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    files.atomic_write_json(str(target), {"b": 1, "a": [2]})
    assert json.loads(target.read_text()) == {"a": [2], "b": 1}
    assert sorted(os.listdir(tmp_path)) == ["record.json"]


def test_read_json_or_gives_the_default_only_for_a_missing_file(tmp_path):
    assert files.read_json_or(str(tmp_path / "absent.json"), {"epoch": 0}) == {"epoch": 0}
    (tmp_path / "there.json").write_text('{"epoch": 3}')
    assert files.read_json_or(str(tmp_path / "there.json"), {}) == {"epoch": 3}
    (tmp_path / "corrupt.json").write_text('{"epoch": ')
    with pytest.raises(json.JSONDecodeError):  # corrupt is not missing
        files.read_json_or(str(tmp_path / "corrupt.json"), {})


def test_only_a_dead_writers_temporaries_are_removed(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max of 2**22: never a live process
    for name in (f"tmp-{dead}-model.keras", f"tmp-{os.getpid()}-model.keras",
                 "tmp-notes-v2.txt", "model.keras"):
        (tmp_path / name).write_text("x")
    files.remove_stale_temporaries(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"tmp-{os.getpid()}-model.keras", "tmp-notes-v2.txt", "model.keras"])


def test_a_full_disk_is_told_from_other_errors():
    assert files.is_full_disk(OSError(28, "No space left on device"))
    assert files.is_full_disk(RuntimeError("h5py: Disk quota exceeded"))
    assert not files.is_full_disk(OSError(13, "Permission denied"))
