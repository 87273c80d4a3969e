"""Warm worker pool: pre-started workers that have already imported torch and TRL and loaded the
default policy, so that Start -> first stored step takes about a second instead of a cold start.

Protocol (files in <runs root>/.pool/, every step an atomic create or rename):
    <pid>.booting   the worker is importing and preloading
    <pid>.ready     idle and waiting; a launcher claims it by renaming it to <pid>.claimed
                    (a booting one too, when none is ready: it reads its job once booted)
    <pid>.job       the launcher's hand-over: {"run_dir": ..., "allow_code": ...}
A warm worker serves exactly one run, then exits (a fresh process per run keeps runs isolated);
the launcher starts a replacement as it claims one. Warm workers exit when their owner (the app
server) is gone or after an idle hour. Enabled by the app (RLHF_EXPLORER_WARM_POOL, default on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .procs import alive

POOL_ENV = "RLHF_EXPLORER_WARM_POOL"
POOL_SUBDIR = ".pool"
IDLE_LIMIT_S = 3600
# A worker booted while a run trains starts at the priority a training worker drops to after its
# first step: it can never raise its priority again (an unprivileged process cannot lower its nice
# value), so at 19 the queued run it later trains would crawl behind the app and every page.
BACKGROUND_NICE = 5
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def enabled() -> bool:
    return os.environ.get(POOL_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def pool_dir(root: str) -> str:
    return os.path.join(root, POOL_SUBDIR)


def _pids(folder: str, suffix: str) -> list[int]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [int(n.split(".")[0]) for n in names if n.endswith(suffix) and n.split(".")[0].isdigit()]


def warm_count(root: str) -> int:
    folder = pool_dir(root)
    return sum(1 for suffix in (".booting", ".ready") for pid in _pids(folder, suffix) if alive(pid))


def spawn(root: str, owner_pid: int, background: bool = False) -> int:
    """Start a warm worker. `background`: a run is training, so it boots at the training run's
    own lowered priority (BACKGROUND_NICE), below the app's."""
    folder = pool_dir(root)
    os.makedirs(folder, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    with open(os.path.join(folder, "warm.log"), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rlhf_core.worker", "--warm", folder,
                                 "--owner", str(owner_pid), *(["--boot-nice", str(BACKGROUND_NICE)] if background else [])],
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=_PROJECT_ROOT)
    # mark it at once, so that two page loads do not both start one
    open(os.path.join(folder, f"{proc.pid}.booting"), "w").close()
    return proc.pid


def ensure_warm(root: str, *, live_runs: int, queued_runs: int, cap: int, owner_pid: int | None = None,
                size: int = 1) -> int:
    """Keep `size` warm workers booting or ready for this runs root. Returns how many started.

    The pool knows nothing of runs: the caller (runs.top_up_pool) counts the live and queued runs
    and passes the concurrency cap. The owner (the app server, which passes its pid) is remembered
    in .pool/owner, so that a launcher without one (a finishing worker draining the queue) tops
    the pool up for it. With no live owner nothing is started: an ownerless warm worker would only
    wait to time out."""
    if not enabled():
        return 0
    folder = pool_dir(root)
    owner_file = os.path.join(folder, "owner")
    if owner_pid is not None:
        os.makedirs(folder, exist_ok=True)
        with open(owner_file + ".tmp", "w") as f:
            f.write(str(owner_pid))
        os.replace(owner_file + ".tmp", owner_file)
    else:
        try:
            with open(owner_file) as f:
                owner_pid = int(f.read().strip())
        except (OSError, ValueError):
            return 0
    if not _owner_alive(owner_pid):
        return 0
    busy = live_runs >= cap
    if busy and not queued_runs:
        # No run could start now and none waits: a booting worker would only take CPU from the one
        # training; the finishing worker tops the pool up once a slot is free.
        return 0
    # With runs queued behind a training one (a sweep), boot the next run's worker now, at the
    # priority of a training run, so that the queued run starts warm the moment the slot frees.
    _cleanup(root)
    started = 0
    while warm_count(root) < size:
        spawn(root, owner_pid, background=busy)
        started += 1
    return started


def _cleanup(root: str) -> None:
    folder = pool_dir(root)
    for suffix in (".booting", ".ready", ".claimed"):
        for pid in _pids(folder, suffix):
            if not alive(pid):
                try:
                    os.unlink(os.path.join(folder, f"{pid}{suffix}"))
                except OSError:
                    pass


def claim(root: str) -> int | None:
    """Atomically take a warm worker; None when there is none. A ready one first, else one still
    booting: it is further along than a cold start would be, and reads its job once booted."""
    folder = pool_dir(root)
    for suffix in (".ready", ".booting"):
        for pid in _pids(folder, suffix):
            if not alive(pid):
                continue
            try:
                os.rename(os.path.join(folder, f"{pid}{suffix}"), os.path.join(folder, f"{pid}.claimed"))
            except OSError:
                continue  # another launcher was faster, or it just became ready
            return pid
    return None


def hand_over(root: str, pid: int, run_dir: str, allow_code: bool) -> None:
    folder = pool_dir(root)
    tmp = os.path.join(folder, f".{pid}.job.tmp")
    with open(tmp, "w") as f:
        json.dump({"run_dir": os.path.abspath(run_dir), "allow_code": allow_code}, f)
    os.replace(tmp, os.path.join(folder, f"{pid}.job"))


# ---- the warm worker's side ------------------------------------------------------------------------

def wait_for_job(folder: str, owner_pid: int, poll_s: float = 0.05) -> dict | None:
    """Announce readiness, then wait for a hand-over. None when the owner is gone or idle too long."""
    pid = os.getpid()
    booting = os.path.join(folder, f"{pid}.booting")
    ready = os.path.join(folder, f"{pid}.ready")
    claimed = os.path.join(folder, f"{pid}.claimed")
    job = os.path.join(folder, f"{pid}.job")
    try:  # announce readiness, unless a launcher claimed this worker while it was booting
        os.rename(booting, ready)
    except FileNotFoundError:
        if not os.path.exists(claimed):
            open(ready, "w").close()
    t_ready = time.time()
    t_claimed = None
    while True:
        if os.path.exists(job):
            with open(job) as f:
                msg = json.load(f)
            for p in (job, claimed):
                if os.path.exists(p):
                    os.unlink(p)
            return msg
        if os.path.exists(claimed):
            t_claimed = t_claimed or time.time()
            if time.time() - t_claimed > 30:  # claimed but never handed a job
                os.unlink(claimed)
                return None
        elif (not os.path.isdir(folder) or time.time() - t_ready > IDLE_LIMIT_S
              or not _owner_alive(owner_pid)):
            if os.path.exists(ready):
                os.unlink(ready)
            return None
        time.sleep(poll_s)


def _owner_alive(owner_pid: int) -> bool:
    try:
        os.kill(owner_pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
