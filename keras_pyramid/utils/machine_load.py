"""Was the machine shared while something was measured? The CPU time other
processes took, from the kernel's own counters.

    watch = LoadWatch()          # before the measurement
    ...                          # the measurement (this process, or a child it waits for)
    load = watch.stop()          # {"other_cpu_fraction": 0.02, "shared": False, ...}

Linux counts every core's busy time in /proc/stat (user, nice, system, irq,
softirq, steal; in clock ticks). Over the measurement, with B the machine's
busy CPU-seconds, O this process's own and its waited-for children's
(`os.times`), W the wall seconds and C the cores:

    other_cpu_fraction = max(B - O, 0) / (W * C)

the share of the machine's whole CPU capacity that other processes used.
Above SHARED_FRACTION the measurement is marked `shared`: its times may be
slower than the machine's own. Where /proc/stat is missing (macOS,
Windows), only the 1-minute load average is recorded and `shared` is None.
"""

import os
import time

SHARED_FRACTION = 0.10  # a tenth of the machine's capacity taken by others
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait)


def _busy_seconds():
    """The machine's busy CPU-seconds since boot, all cores; None without /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return None
    ticks = sum(int(fields[index]) for index in BUSY_FIELDS if index < len(fields))
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_seconds():
    """CPU-seconds of this process and the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def load_average():
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows has no getloadavg
        return None


class LoadWatch:
    """Watches the machine from construction to `stop()` (see the module doc)."""

    def __init__(self):
        self.started = time.perf_counter()
        self.busy = _busy_seconds()
        self.own = _own_seconds()
        self.load_average = load_average()

    def stop(self):
        """The record: load averages at start and end, the wall seconds, the
        other processes' share of the machine and whether it was `shared`."""
        wall = time.perf_counter() - self.started
        busy = _busy_seconds()
        record = {"load_average_1m": [self.load_average, load_average()],
                  "wall_seconds": wall, "cores": os.cpu_count(),
                  "other_cpu_fraction": None, "shared": None}
        if busy is not None and self.busy is not None and wall > 0:
            others = max(busy - self.busy - (_own_seconds() - self.own), 0.0)
            fraction = others / (wall * os.cpu_count())
            record.update(other_cpu_fraction=round(fraction, 4),
                          shared=fraction > SHARED_FRACTION)
        return record


def shared_during(records):
    """True when any of these `stop()` records was shared, None when none
    could tell, else False."""
    known = [r.get("shared") for r in records if r and r.get("shared") is not None]
    return None if not known else any(known)
