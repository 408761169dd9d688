"""Files written whole or not at all: a reader never sees half a file.

    with atomic_path("runs/x/model.keras") as temporary:
        model.save(temporary)          # renamed onto the path only on success

A killed process leaves at most a `tmp-PID-NAME` sibling, never a truncated
file under the real name.
"""

import contextlib
import errno
import json
import os

from keras_pyramid.utils.processes import process_alive


def temporary_path(path):
    """A sibling of `path` to write first and `os.replace` onto `path`.

    Same folder (so the rename is atomic), same suffix (Keras and matplotlib
    choose the format from it).
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f"tmp-{os.getpid()}-{name}")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary sibling of `path` to write; on success it replaces
    `path`, on an exception it is removed and `path` is left as it was.

    The one temp-then-rename of the package: every whole-file write goes
    through it (atomic_write_text, the weights cache's unzip, the converted
    tensors), so none leaves its temporary behind when it fails."""
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path, text):
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path, data):
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_json_or(path, default):
    """The JSON at `path`, or `default` where no file is there (a first run,
    before the record is written). A file that is there but unreadable still
    raises: a corrupt record is not a missing one."""
    try:
        return read_json(path)
    except (FileNotFoundError, NotADirectoryError):  # no file there, nor a folder above it
        return default


def remove_stale_temporaries(folder):
    """Removes the `tmp-PID-NAME` files in `folder` whose writer PID is no
    longer running: a process killed mid-write (or failed on a full disk)
    leaves one, which would keep the space it took."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        pid = _writer_pid(name)
        if pid is not None and pid != os.getpid() and not process_alive(pid):
            os.remove(os.path.join(folder, name))


def _writer_pid(name):
    """The PID in a `temporary_path` name, else None."""
    prefix, _, rest = name.partition("-")
    pid, _, _ = rest.partition("-")
    return int(pid) if prefix == "tmp" and pid.isdigit() and rest.count("-") else None


# A full disk (or a full quota): the errno of an OSError, or the C library's
# message where a writer keeps only the text (h5py, TensorFlow's file writer,
# a child process).
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_MESSAGES = ("No space left on device", "Disk quota exceeded")


def is_full_disk(error):
    """Whether the exception `error` says the disk or the quota is full."""
    if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
        return True
    return any(message in str(error) for message in NO_SPACE_MESSAGES)
