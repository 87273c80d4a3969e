"""Control messages from the UI (or any process) to a running worker: runs/<id>/control.json.

Written atomically (temp file + os.replace) so the worker never reads half a message, and under
an exclusive lock on control.lock, so two writers (a Stop in one tab, an Apply in another) never
read the same old message and overwrite each other's change. Every write raises `seq`; the worker
reads the small file once per step and acts on a message whose `seq` it has not seen (an mtime
can stay the same across two writes within one clock tick; a sequence number cannot).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile

CONTROL_FILE = "control.json"
LOCK_FILE = "control.lock"


@contextlib.contextmanager
def _locked(run_dir: str):
    """An exclusive advisory lock on the run's control.lock for one read-modify-write."""
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
    with _locked(run_dir):
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
    """Hands over each control message once, by its `seq`."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self._seq = None
        self.message: dict = {}

    def poll(self) -> dict | None:
        """The message when its seq is new since the last poll, else None (one small read)."""
        msg = read_control(self.run_dir)
        if not msg or msg.get("seq") == self._seq:
            return None
        self._seq = msg.get("seq")
        self.message = msg
        return msg
