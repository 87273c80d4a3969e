"""Control messages from the UI (or any process) to a running worker: runs/<id>/control.json.

Written atomically (temp file + os.replace) so the worker never reads half a message. The
worker polls the file's mtime once per step, which costs one stat() call.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

CONTROL_FILE = "control.json"


def control_path(run_dir: str) -> str:
    return os.path.join(run_dir, CONTROL_FILE)


def write_control(run_dir: str, **changes) -> dict:
    """Merge `changes` (stop=True, kl_coef=0.1, clip_range=0.2) into the control file atomically."""
    for key in ("kl_coef", "clip_range"):
        if key in changes and changes[key] is not None:
            v = changes[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{key} must be a finite number, got {v!r}")
            if v < 0 or (key == "clip_range" and v == 0):
                raise ValueError(f"{key} must be {'> 0' if key == 'clip_range' else '≥ 0'}, got {v}")
    unknown = set(changes) - {"stop", "kl_coef", "clip_range"}
    if unknown:
        raise ValueError(f"unknown control keys: {', '.join(sorted(unknown))}")
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} does not exist (was the run deleted?)")
    msg = read_control(run_dir)
    msg.update(changes)
    msg["seq"] = int(msg.get("seq", 0)) + 1
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".control-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(msg, f)
        os.replace(tmp, control_path(run_dir))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return msg


def read_control(run_dir: str) -> dict:
    try:
        with open(control_path(run_dir)) as f:
            msg = json.load(f)
        return msg if isinstance(msg, dict) else {}
    except (OSError, ValueError):
        return {}


class ControlWatcher:
    """Re-reads the control file only when its mtime changes."""

    def __init__(self, run_dir: str):
        self.path = control_path(run_dir)
        self._mtime = None
        self.message: dict = {}

    def poll(self) -> dict | None:
        """The new message when the file changed since the last poll, else None."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return None
        if mtime == self._mtime:
            return None
        self._mtime = mtime
        try:
            with open(self.path) as f:
                msg = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(msg, dict):
            return None
        self.message = msg
        return msg
