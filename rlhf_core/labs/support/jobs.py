"""Lab runs for the app: a subprocess per (lab, config), results cached on disk per config.

The app never imports torch: it starts `python -m rlhf_core lab NAME --out RESULT --progress-file
PROGRESS` in its own session at lowered priority and reads the files back. Files live in
`<runs root>/.labs/<lab>/<key>.{json,progress.json,log,pid}`, where key hashes the lab's code, the
zoo assets, every setting and the seed count; a finished result is reused for the same settings
across restarts, and never after the code or the models changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from .. import cache_path, config


@dataclass
class LabJob:
    state: str                  # "done", "running", "failed" or "none"
    result: dict | None = None
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    started: float | None = None


def _paths(root: str, name: str, cfg, seeds: int) -> dict[str, str]:
    result = cache_path(root, name, cfg, seeds)
    stem = result[: -len(".json")]
    return {"result": result, "progress": stem + ".progress.json", "log": stem + ".log", "pid": stem + ".pid"}


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
        return LabJob("done", result=result, fraction=1.0)
    pid_info = _read_json(p["pid"])
    if not pid_info:
        return LabJob("none")
    prog = _read_json(p["progress"]) or {}
    if _alive(int(pid_info["pid"])):
        return LabJob("running", fraction=float(prog.get("fraction", 0.0)), message=str(prog.get("message", "starting")),
                      started=pid_info.get("started"))
    try:
        with open(p["log"]) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        lines = []
    errors = [ln for ln in lines if ln.startswith("error:")]
    return LabJob("failed", error=(errors or lines or ["the lab process ended without a result"])[-1])


def start(root: str, name: str, overrides: dict | None = None, seeds: int = 1) -> LabJob:
    """Start the lab unless a result or a live job for these settings already exists."""
    cfg = config(name, overrides)  # raises ConfigError naming the field before anything starts
    current = status(root, name, overrides, seeds)
    if current.state in ("done", "running"):
        return current
    p = _paths(root, name, cfg, seeds)
    os.makedirs(os.path.dirname(p["result"]), exist_ok=True)
    for key in ("progress", "log"):
        if os.path.exists(p[key]):
            os.remove(p[key])
    cmd = [sys.executable, "-m", "rlhf_core", "lab", name, "--out", p["result"], "--progress-file", p["progress"],
           "--seeds", str(seeds)]
    for key, value in cfg.model_dump().items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    with open(p["log"], "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env,
                                preexec_fn=(lambda: os.nice(5)) if hasattr(os, "nice") else None)
    with open(p["pid"], "w") as f:
        json.dump({"pid": proc.pid, "started": time.time()}, f)
    return LabJob("running", message="starting", started=time.time())


def forget(root: str, name: str, overrides: dict | None = None, seeds: int = 1) -> None:
    """Drop a cached result (to re-run the same settings)."""
    p = _paths(root, name, config(name, overrides), seeds)
    for path in p.values():
        if os.path.exists(path):
            os.remove(path)
