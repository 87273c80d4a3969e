"""Whether a worker process is alive: shared by runs (its workers) and pool (its warm workers),
so that neither imports the other."""

from __future__ import annotations

import os


def alive(pid) -> bool:
    """True if `pid` is a live rlhf_core process. Reaps our own zombie children first, so an
    exited worker never looks alive, and checks the command line so a recycled pid does not."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fine, look at /proc
    except OSError:
        return False
    proc = f"/proc/{pid}"
    if os.path.isdir("/proc"):
        try:
            with open(f"{proc}/stat") as f:
                if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    return False
            with open(f"{proc}/cmdline", "rb") as f:
                return b"rlhf_core" in f.read()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
