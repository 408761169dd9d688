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
