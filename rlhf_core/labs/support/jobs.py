"""Lab runs for the app: a subprocess per (lab, config), results cached on disk per config.

The app never imports torch: it starts `python -m rlhf_core lab NAME --out RESULT --progress-file
PROGRESS` in its own session at lowered priority and reads the files back. Files live in
`<runs root>/.labs/<lab>/<key>.{json,progress.json,log,pid}`, where key hashes the lab's code, the
zoo assets, every setting and the seed count; a finished result is reused for the same settings
across restarts, and never after the code or the models changed. A job's temporary files go to
`<key>.scratch/` (its TMPDIR), removed when it ends or is cancelled, even by SIGKILL.

On a hosted server a visitor runs at most one lab job at a time and the server at most
RLHF_EXPLORER_LAB_JOBS; only the visitor who started a job may cancel it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from ... import hosting
from ...config import ConfigError
from .. import cache_path, config


@dataclass
class LabJob:
    state: str                  # "done", "running", "failed" or "none"
    result: dict | None = None
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    started: float | None = None
    owner: str | None = None    # the visitor tag of whoever started it (hosted mode)


def _paths(root: str, name: str, cfg, seeds: int) -> dict[str, str]:
    result = cache_path(root, name, cfg, seeds)
    stem = result[: -len(".json")]
    return {"result": result, "progress": stem + ".progress.json", "log": stem + ".log", "pid": stem + ".pid",
            "scratch": stem + ".scratch"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process counts as ended
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def status(root: str, name: str, overrides: dict | None = None, seeds: int = 1) -> LabJob:
    cfg = config(name, overrides)
    p = _paths(root, name, cfg, seeds)
    result = _read_json(p["result"])
    if result is not None:
        shutil.rmtree(p["scratch"], ignore_errors=True)
        return LabJob("done", result=result, fraction=1.0)
    pid_info = _read_json(p["pid"])
    if not pid_info:
        return LabJob("none")
    prog = _read_json(p["progress"]) or {}
    if _alive(int(pid_info["pid"])):
        return LabJob("running", fraction=float(prog.get("fraction", 0.0)), message=str(prog.get("message", "starting")),
                      started=pid_info.get("started"), owner=pid_info.get("owner"))
    shutil.rmtree(p["scratch"], ignore_errors=True)
    try:
        with open(p["log"]) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        lines = []
    errors = [ln for ln in lines if ln.startswith("error:")]
    return LabJob("failed", error=(errors or lines or ["the lab process ended without a result"])[-1])


def running_jobs(root: str) -> list[dict]:
    """Every live lab job under this runs root: its pid file's contents (pid, started, owner)."""
    out = []
    for path in glob.glob(os.path.join(root, ".labs", "*", "*.pid")):
        info = _read_json(path)
        if info and _alive(int(info.get("pid", 0))) and not os.path.exists(path[: -len(".pid")] + ".json"):
            out.append(info)
    return out


def _check_capacity(root: str, owner: str | None) -> None:
    host = hosting.settings()
    if not host.hosted:
        return
    if owner is None:
        raise ConfigError("this server needs to know which browser starts a lab; reload the page")
    live = running_jobs(root)
    if any(j.get("owner") == owner for j in live):
        raise ConfigError("you already have a lab running; cancel it or wait for it to finish")
    if len(live) >= host.lab_jobs:
        raise ConfigError(f"this server runs at most {host.lab_jobs} lab job{'s' if host.lab_jobs > 1 else ''} at "
                          "once and is busy; try again when one has finished")


def start(root: str, name: str, overrides: dict | None = None, seeds: int = 1, owner: str | None = None) -> LabJob:
    """Start the lab unless a result or a live job for these settings already exists. On a hosted
    server the visitor's and the server's job limits apply (ConfigError says which)."""
    cfg = config(name, overrides)  # raises ConfigError naming the field before anything starts
    current = status(root, name, overrides, seeds)
    if current.state in ("done", "running"):
        return current
    _check_capacity(root, owner)
    p = _paths(root, name, cfg, seeds)
    os.makedirs(os.path.dirname(p["result"]), exist_ok=True)
    for key in ("progress", "log"):
        if os.path.exists(p[key]):
            os.remove(p[key])
    shutil.rmtree(p["scratch"], ignore_errors=True)
    os.makedirs(p["scratch"])
    cmd = [sys.executable, "-m", "rlhf_core", "lab", name, "--out", p["result"], "--progress-file", p["progress"],
           "--seeds", str(seeds)]
    for key, value in cfg.model_dump().items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
               TMPDIR=p["scratch"])  # every temporary file of the job and its children, removable in one go
    with open(p["log"], "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env,
                                preexec_fn=(lambda: os.nice(5)) if hasattr(os, "nice") else None)
    with open(p["pid"], "w") as f:
        json.dump({"pid": proc.pid, "started": time.time(), "owner": owner}, f)
    return LabJob("running", message="starting", started=time.time(), owner=owner)


def cancel(root: str, name: str, overrides: dict | None = None, seeds: int = 1, owner: str | None = None) -> None:
    """Stop a running lab job and everything it started (its process group), and remove its
    files. On a hosted server only the visitor who started it may."""
    p = _paths(root, name, config(name, overrides), seeds)
    pid_info = _read_json(p["pid"])
    if not pid_info:
        return
    if not hosting.may_act(pid_info.get("owner"), owner):
        raise ConfigError("another visitor started this lab job; only they can cancel it")
    pid = int(pid_info["pid"])
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)  # the job is its session's leader: its seed workers go with it
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(pid):
            time.sleep(0.05)
        if not _group_alive(pid):
            break
    _alive(pid)  # reap it if it is our child
    for key in ("progress", "log", "pid"):
        if os.path.exists(p[key]):
            os.remove(p[key])
    shutil.rmtree(p["scratch"], ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the job's group is left (its leader reaped first if it has exited)."""
    _alive(pgid)
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def forget(root: str, name: str, overrides: dict | None = None, seeds: int = 1) -> None:
    """Drop a cached result (to re-run the same settings)."""
    p = _paths(root, name, config(name, overrides), seeds)
    for key, path in p.items():
        if key == "scratch":
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)
