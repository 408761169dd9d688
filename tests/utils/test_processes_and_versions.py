"""keras_pyramid.utils.processes and .versions: a process's liveness and
peak memory, and the installed versions.

Pure Python: runs once, under tensorflow."""

import sys

import numpy as np
from helpers.backends import ONCE
from helpers.processes import start_command

from keras_pyramid.utils import processes, versions

pytestmark = ONCE


def test_a_process_is_alive_until_it_exits():
    assert processes.process_alive(processes.os.getpid())
    child = start_command([sys.executable, "-c", "pass"])
    child.communicate(timeout=60)
    assert not processes.process_alive(child.pid)
    assert not processes.process_alive(0) and not processes.process_alive(-1)


def test_the_peak_memory_sees_an_allocation_after_its_reset():
    """64 MiB written after the reset raise the peak by at least that much:
    the peak is in bytes (not KiB) and counts from the reset."""
    source = processes.reset_peak_memory()
    before, _ = processes.peak_memory()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # written: resident, not only reserved
    after, read_from = processes.peak_memory()
    del block
    assert source == read_from == processes.PEAK_FROM_PROC  # this test machine is Linux
    assert after - before >= 60 * 2**20


def test_versions_are_the_installed_ones_and_absent_packages_are_left_out():
    found = versions.versions(("numpy", "no-such-distribution-here"))
    assert found == {"python": sys.version.split()[0], "numpy": np.__version__}
    assert versions.installed("no-such-distribution-here") is None
