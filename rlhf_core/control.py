"""Control messages from the UI (or any process) to a running worker: runs/<id>/control.json.

Written atomically (temp file + os.replace) so the worker never reads half a message. The
worker polls the file's mtime once per step, which costs one stat() call.
"""

from __future__ import annotations

import json
import os
import tempfile

CONTROL_FILE = "control.json"


def control_path(run_dir: str) -> str:
    return os.path.join(run_dir, CONTROL_FILE)


LIVE_KNOBS = ("kl_coef", "clip_range")


def knob_problem(name: str, value) -> str | None:
    """Why `value` is not a valid live setting of knob `name` (RunConfig's own rules), else None."""
    from .config import ConfigError, RunConfig

    try:
        RunConfig.parse({name: value})
    except ConfigError as e:
        return str(e)
    return None


def write_control(run_dir: str, **changes) -> dict:
    """Merge `changes` (stop=True, kl_coef=0.1, clip_range=0.2) into the control file atomically."""
    for key in LIVE_KNOBS:
        if changes.get(key) is not None and (problem := knob_problem(key, changes[key])):
            raise ValueError(problem)
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
