"""Whether a process still runs: stale locks and staging folders belong to dead ones.

    process_alive(4242)  # False once process 4242 has exited

Files here carry the writer's PID (`tmp-PID-NAME`, `.tmp-VERSION-PID`, the
run directory's lock); a file whose PID is not alive is a leftover.
"""

import os


def process_alive(pid):
    """True when a process `pid` exists on this machine (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only the existence is checked
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


PEAK_FROM_PROC = "VmHWM since its reset (Linux)"
PEAK_FROM_RUSAGE = "ru_maxrss: the process's peak since it started"


def reset_peak_memory():
    """Starts this process's peak resident memory afresh, where Linux lets a
    process do so (writing 5 to /proc/self/clear_refs resets VmHWM); returns
    the source `peak_memory` will read."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return PEAK_FROM_PROC
    except OSError:
        return PEAK_FROM_RUSAGE


def peak_memory():
    """(bytes, source): this process's peak resident memory, from VmHWM where
    /proc has it, else getrusage's ru_maxrss (KiB on Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, PEAK_FROM_PROC
    except OSError:
        pass
    import resource
    import sys

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, PEAK_FROM_RUSAGE
