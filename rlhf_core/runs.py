"""Launching, listing, re-attaching to, stopping and queueing runs (no UI code).

Runs live under ./runs by default (RLHF_EXPLORER_RUNS overrides it), one folder per run id.
A run is created "queued"; `schedule()` starts queued runs as worker subprocesses while fewer
than the concurrency cap are live (RLHF_EXPLORER_MAX_RUNS, default 1 on CPU). Every finishing
worker calls `schedule()` too, so a queue drains even with no browser open.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import pool
from .config import ConfigError, RunConfig
from .control import write_control
from .procs import alive
from .store import FINAL_STATUSES, LIVE_STATUSES, RunStore, StoreError

RUNS_ENV = "RLHF_EXPLORER_RUNS"
MAX_RUNS_ENV = "RLHF_EXPLORER_MAX_RUNS"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunError(ValueError):
    """A bad run id, a missing run or an unusable runs folder; the message is for the user."""


def runs_root(root: str | None = None) -> str:
    return os.path.abspath(root or os.environ.get(RUNS_ENV) or "runs")


def default_cap() -> int:
    raw = os.environ.get(MAX_RUNS_ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise RunError(f"{MAX_RUNS_ENV} must be a whole number, got {raw!r}") from None
    return 1


def validate_run_id(run_id) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        shown = str(run_id)[:60]
        raise RunError(f"'{shown}' is not a valid run id (letters, digits, '-', '_' and '.' only)")
    return run_id


def run_dir(run_id: str, root: str | None = None) -> str:
    return os.path.join(runs_root(root), validate_run_id(run_id))


def ensure_root(root: str | None = None) -> str:
    path = runs_root(root)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise RunError(f"runs folder {path} cannot be created ({e.strerror or e}); set {RUNS_ENV} "
                       "to a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunError(f"runs folder {path} is not writable; set {RUNS_ENV} to a writable folder")
    return path


@contextmanager
def _root_lock(root: str):
    with open(os.path.join(root, ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class RunInfo:
    id: str
    dir: str
    status: str
    config: dict = field(default_factory=dict)
    steps_done: int = 0
    steps_total: int = 0
    last: dict = field(default_factory=dict)
    error: str | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    owner: str | None = None  # the tag of the visitor who started it (hosted mode), else None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def as_json(self) -> dict:
        return {"id": self.id, "status": self.status, "steps_done": self.steps_done,
                "steps_total": self.steps_total, "last": self.last, "error": self.error,
                "config": self.config, "created": self.created, "started": self.started,
                "ended": self.ended, "duration": self.duration}


def effective_status(store: RunStore, meta: dict | None = None, last: dict | None = None) -> tuple[str, dict | None]:
    """The stored status, except that a live status whose process is gone reads 'crashed'."""
    last = store.last_status() if last is None else last
    if last is None:
        return "crashed", None
    meta = store.meta() if meta is None else meta
    if last["status"] in LIVE_STATUSES and not alive(meta.get("pid")):
        # a just-launched worker may not have written its pid yet
        if last["status"] == "starting" and meta.get("pid") is None and time.time() - last["ts"] < 30:
            return "starting", last
        return "crashed", last
    return last["status"], last


def info(run_id: str, root: str | None = None, with_last: bool = True) -> RunInfo:
    path = run_dir(run_id, root)
    if not os.path.isdir(path):
        raise RunError(f"run '{run_id}' not found in {runs_root(root)}")
    return info_at(path, with_last)


def info_at(path: str, with_last: bool = True) -> RunInfo:
    """RunInfo for any run folder (the CLI accepts folders outside the runs root)."""
    run_id = os.path.basename(os.path.normpath(path))
    if not os.path.isdir(path):
        raise RunError(f"{path}: no such run folder")
    try:
        store = RunStore(path)
        summary = store.summary()
        meta = summary["meta"]
        status, last = effective_status(store, meta, summary["status"])
        rows = [summary["last"]] if with_last and summary["last"] else []
        steps_done = summary["steps"]
    except StoreError as e:
        return RunInfo(run_id, path, "failed", error=f"run store unreadable: {e}")
    cfg = meta.get("config") or {}
    error = last.get("message") if last and status in ("failed", "diverged") else None
    if status == "crashed":
        error = "the worker process is gone without writing a final status (killed or crashed)"
        last_error = _last_error_line(path)
        if last_error:
            error += f"; its log says: {last_error}"
    return RunInfo(run_id, path, status, cfg, steps_done, int(meta.get("steps_total") or cfg.get("steps") or 0),
                   rows[-1] if rows else {}, error, meta.get("created"), meta.get("started"),
                   meta.get("ended"), meta.get("pid"), meta.get("owner"))


def _last_error_line(path: str) -> str | None:
    """The last 'error:' line a worker printed to worker.log (e.g. a full disk)."""
    try:
        with open(os.path.join(path, "worker.log"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    errors = [ln.strip() for ln in lines if ln.startswith("error:") or "Error:" in ln]
    return errors[-1][:300] if errors else None


def list_runs(root: str | None = None) -> list[RunInfo]:
    base = runs_root(root)
    if not os.path.isdir(base):
        return []
    out = []
    for name in os.listdir(base):
        if not _RUN_ID.match(name) or not os.path.isdir(os.path.join(base, name)):
            continue
        if not os.path.exists(os.path.join(base, name, "run.sqlite")):
            continue
        out.append(info(name, root))
    out.sort(key=lambda r: (r.created or 0, r.id), reverse=True)
    return out


def new_run_id(cfg: RunConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.algorithm}-{random.randrange(16**4):04x}"


def create_run(cfg: RunConfig, root: str | None = None, run_id: str | None = None,
               path: str | None = None) -> str:
    """Create a queued run (folder, config.yaml, store). Returns the run directory."""
    if path is None:
        base = ensure_root(root)
        path = os.path.join(base, validate_run_id(run_id) if run_id else new_run_id(cfg))
    if os.path.exists(os.path.join(path, "run.sqlite")):
        raise RunError(f"{path} already holds a run; choose another --run-dir")
    try:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.yaml"), "w") as f:
            f.write(cfg.to_yaml())
        store = RunStore(path, create=True)
        store.set_meta(created=time.time(), config=cfg.model_dump(), steps_total=cfg.steps,
                       algorithm=cfg.algorithm)
        store.set_status("queued")
    except OSError as e:
        raise RunError(f"cannot create run in {path}: {e.strerror or e}") from None
    return path


def _offline_capable(path: str) -> bool:
    """Whether a run needs nothing from the hub, so that a warm worker (offline since its first
    import) may take it."""
    from . import zoo

    try:
        cfg = RunConfig.from_yaml(os.path.join(path, "config.yaml"))
        return not zoo.needs_hub(cfg.policy, cfg.reward)
    except (ConfigError, zoo.ZooError):
        return False  # a cold worker reports the problem in the run's own store


def launch(path: str, allow_code: bool = False) -> int:
    """Start the worker for a run folder: hand it to a warm pooled worker when one is ready,
    else start a detached subprocess. Returns the worker's pid."""
    root = os.path.dirname(os.path.abspath(path))
    store = RunStore(path)
    warm_pid = pool.claim(root) if pool.enabled() and _offline_capable(path) else None
    if warm_pid is not None:
        store.set_meta(pid=warm_pid, allow_code=allow_code, warm=True)
        store.set_status("starting")
        pool.hand_over(root, warm_pid, path, allow_code)
        try:
            top_up_pool(root)  # a replacement for the next run
        except OSError:
            pass
        return warm_pid
    cmd = [sys.executable, "-m", "rlhf_core.worker", path]
    if allow_code:
        cmd.append("--allow-code")
    env = dict(os.environ)
    env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    with open(os.path.join(path, "worker.log"), "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=_PROJECT_ROOT)
    store.set_meta(pid=proc.pid, allow_code=allow_code, warm=False)
    store.set_status("starting")
    return proc.pid


def schedule(root: str | None = None, cap: int | None = None) -> list[str]:
    """Start queued runs, oldest first, while fewer than `cap` are live. Returns started ids."""
    base = runs_root(root)
    if not os.path.isdir(base):
        return []
    cap = default_cap() if cap is None else cap
    started = []
    with _root_lock(base):
        runs = list_runs(base)
        live = sum(1 for r in runs if r.status in LIVE_STATUSES)
        for r in sorted((r for r in runs if r.status == "queued"), key=lambda r: (r.created or 0, r.id)):
            if live >= cap:
                break
            meta = RunStore(r.dir).meta()
            launch(r.dir, allow_code=bool(meta.get("allow_code")))
            started.append(r.id)
            live += 1
    return started


def top_up_pool(root: str | None = None, owner_pid: int | None = None,
                listed: list[RunInfo] | None = None) -> int:
    """Have a warm worker booting or ready for the next run (see pool.ensure_warm), counting the
    live and queued runs here so that the pool needs nothing from this module. `listed`: the runs
    the caller has just listed, to save listing them again."""
    listed = list_runs(root) if listed is None else listed
    return pool.ensure_warm(runs_root(root), owner_pid=owner_pid, cap=default_cap(),
                            live_runs=sum(r.status in LIVE_STATUSES for r in listed),
                            queued_runs=sum(r.status == "queued" for r in listed))


def owner_tag(visitor_token: str) -> str:
    """The tag stored with a visitor's runs: a hash of the browser's secret token, so that the
    tags a run list shows never grant control (only the token does, and it stays in the browser)."""
    if not isinstance(visitor_token, str) or not re.fullmatch(r"[0-9a-f]{32}", visitor_token):
        raise RunError("this browser's visitor token is malformed; reload the page")
    return hashlib.sha256(visitor_token.encode()).hexdigest()[:32]


def visitor_runs(owner: str | None, root: str | None = None, listed: list[RunInfo] | None = None) -> list[RunInfo]:
    """The visitor's queued or live runs."""
    listed = list_runs(root) if listed is None else listed
    return [r for r in listed if owner and r.owner == owner and (r.status in LIVE_STATUSES or r.status == "queued")]


def check_quota(owner: str | None, adding: int = 1, root: str | None = None) -> None:
    """On a hosted server a visitor may have at most runs_per_visitor runs queued or training."""
    from . import hosting

    host = hosting.settings()
    if not host.hosted:
        return
    if owner is None:
        raise RunError("this server needs to know which browser starts a run; reload the page")
    have = len(visitor_runs(owner, root))
    if have + adding > host.runs_per_visitor:
        raise RunError(f"you have {have} run{'s' if have != 1 else ''} queued or training and this server allows "
                       f"{host.runs_per_visitor} per visitor; stop one or wait for it to finish")


def may_control(r: RunInfo, owner: str | None) -> bool:
    """Whether this visitor may stop, retune or delete the run: anyone on a private server; on a
    hosted one only the visitor whose browser started it."""
    from . import hosting

    return hosting.may_act(r.owner, owner)


def _check_control(run_id: str, root: str | None, owner: str | None) -> RunInfo:
    r = info(run_id, root, with_last=False)
    if not may_control(r, owner):
        raise RunError(f"run '{run_id}' was started by another visitor: you can watch it, but only they "
                       "can stop, retune or delete it")
    return r


def new_sweep_id(name: str) -> str:
    """A label shared by the runs queued together as one sweep ('grpo-loss-variants-20261207-231502'):
    the same sweep queued twice gives two groups (trackio export groups by it)."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def submit(cfg: RunConfig, root: str | None = None, allow_code: bool = False, cap: int | None = None,
           owner: str | None = None, sweep: str | None = None) -> str:
    """Queue a run and start it if the cap allows. Returns its run id. `owner`: the visitor's tag
    (hosted mode), who alone may then stop or retune it. `sweep`: the new_sweep_id of the sweep it
    belongs to, if any."""
    with _root_lock(ensure_root(root)):  # two quick clicks cannot both pass the quota
        check_quota(owner, 1, root)
        path = create_run(cfg, root)
        meta = {}
        if allow_code:
            meta["allow_code"] = True
        if owner:
            meta["owner"] = owner
        if sweep:
            meta["sweep"] = sweep
        if meta:
            RunStore(path).set_meta(**meta)
    schedule(root, cap)
    try:  # queued behind a live run: have its warm worker boot meanwhile
        top_up_pool(runs_root(root))
    except OSError:
        pass
    return os.path.basename(path)


def queue_place(run_id: str, root: str | None = None, listed: list[RunInfo] | None = None) -> tuple[int, float | None] | None:
    """(place in the queue from 1, estimated seconds until it starts) for a queued run, else None.

    The estimate: the live runs' remaining steps at their own pace, plus the steps of every run
    queued ahead at the pace of recent finished runs, shared over the concurrency cap. None when
    nothing has finished yet to take a pace from."""
    listed = list_runs(root) if listed is None else listed
    queued = sorted((r for r in listed if r.status == "queued"), key=lambda r: (r.created or 0, r.id))
    ids = [r.id for r in queued]
    if run_id not in ids:
        return None
    place = ids.index(run_id) + 1
    recent = sorted((r for r in listed if r.status == "finished" and r.steps_done and r.duration),
                    key=lambda r: r.ended or 0)[-50:]  # the last 50 to finish
    paces = sorted(r.duration / r.steps_done for r in recent)
    live = [r for r in listed if r.status in LIVE_STATUSES]
    live_paces = [r.duration / r.steps_done for r in live if r.steps_done and r.duration]
    pace = paces[len(paces) // 2] if paces else (sorted(live_paces)[len(live_paces) // 2] if live_paces else None)
    if pace is None:
        return place, None
    work = sum(max(0, r.steps_total - r.steps_done) * ((r.duration / r.steps_done) if r.steps_done and r.duration
                                                        else pace) for r in live)
    work += sum(r.steps_total * pace for r in queued[: place - 1])
    return place, work / max(1, default_cap())


def set_knobs(run_id: str, root: str | None = None, owner: str | None = None, **knobs) -> None:
    """Apply live knobs (kl_coef, clip_range) at the run's next step."""
    _check_control(run_id, root, owner)
    knobs = {k: v for k, v in knobs.items() if v is not None}
    write_control(run_dir(run_id, root), **knobs)


def stop(run_id: str, root: str | None = None, wait: float = 0.0, owner: str | None = None) -> str:
    """Ask a run to stop. Queued runs are withdrawn at once. Idempotent (two tabs may both press
    Stop). With `wait`, escalate to SIGTERM if the worker has not stopped after `wait` seconds.
    On a hosted server only the run's owner may stop it."""
    path = run_dir(run_id, root)
    r = _check_control(run_id, root, owner)
    store = RunStore(path)
    if r.status == "queued":
        with _root_lock(runs_root(root)):
            if store.last_status()["status"] == "queued":
                store.set_status("stopped", "withdrawn from the queue")
        return "stopped"
    if r.status in FINAL_STATUSES:
        return r.status
    write_control(path, stop=True)
    deadline = time.time() + wait
    while wait and time.time() < deadline:
        if info(run_id, root, with_last=False).status not in LIVE_STATUSES:
            break
        time.sleep(0.1)
    else:
        if wait and alive(r.pid):
            os.kill(r.pid, signal.SIGTERM)
    return info(run_id, root, with_last=False).status


def delete(run_id: str, root: str | None = None, owner: str | None = None) -> None:
    """Delete a run; a live worker is stopped first (and killed if it does not stop in 3 s).
    On a hosted server only the run's owner may delete it."""
    path = run_dir(run_id, root)
    if not os.path.isdir(path):
        raise RunError(f"run '{run_id}' not found")
    _check_control(run_id, root, owner)
    try:
        r = info(run_id, root, with_last=False)
    except RunError:
        r = None
    if r is not None and r.status in LIVE_STATUSES and alive(r.pid):
        try:
            stop(run_id, root, wait=3.0, owner=owner)
        except (RunError, StoreError, OSError):
            pass
        if alive(r.pid):
            os.kill(r.pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


PRUNE_EVERY_S = 60


def _disk_use(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def prune(root: str | None = None, now: float | None = None) -> list[str]:
    """Delete ended runs older than the operator's keep time, then the oldest ended runs while the
    runs folder is over its disk cap (hosting.py; both off on a private server unless set). Live
    and queued runs are never touched. Returns the deleted run ids."""
    from . import hosting

    host = hosting.settings()
    keep_s, cap = host.prune_after_s, host.disk_cap_bytes
    base = runs_root(root)
    if (keep_s is None and cap is None) or not os.path.isdir(base):
        return []
    now = time.time() if now is None else now
    ended = sorted((r for r in list_runs(base) if r.status in FINAL_STATUSES),
                   key=lambda r: r.ended or r.created or 0)
    deleted = []
    for r in ended:
        if keep_s is not None and now - (r.ended or r.created or now) > keep_s:
            shutil.rmtree(r.dir, ignore_errors=True)
            deleted.append(r.id)
    if cap is not None:
        used = _disk_use(base)
        for r in (r for r in ended if r.id not in deleted):
            if used <= cap:
                break
            size = _disk_use(r.dir)
            shutil.rmtree(r.dir, ignore_errors=True)
            deleted.append(r.id)
            used -= size
    return deleted


def prune_now_and_then(root: str | None = None) -> list[str]:
    """prune() at most once a minute per runs folder, whoever asks (every page load, every
    finishing worker): a stamp file's age says when it last ran."""
    base = runs_root(root)
    stamp = os.path.join(base, ".pruned")
    try:
        if time.time() - os.path.getmtime(stamp) < PRUNE_EVERY_S:
            return []
    except OSError:
        pass
    try:
        with open(stamp, "w"):
            pass
    except OSError:
        return []
    return prune(base)


def preflight(cfg: RunConfig, allow_code: bool = False) -> None:
    """Cheap checks before queueing a run, so the user hears about a bad name or a missing network
    at once rather than from a failed worker: policy and reward names resolve, hub ids are
    reachable (or cached) and not over the size limit, a file reward is opted in and in scope,
    and on a hosted server only offered inputs are used."""
    from . import hosting, zoo
    from .rewards import RewardError, check_code_file, check_reward_name, split_hub_reward

    hosting.check_run_inputs(cfg)  # first: a hosted server never probes a visitor's free text
    check_reward_name(cfg.reward)
    path, is_hub = zoo.resolve(cfg.policy, "policy", materialise=False)
    if is_hub:
        zoo.hub_load_kwargs(path, "policy")
    kind, _, arg = cfg.reward.partition(":")
    if kind == "hub":
        model_id, _ = split_hub_reward(arg)
        try:
            rm_path, rm_hub = zoo.resolve(model_id, "reward model")
            if rm_hub:
                zoo.hub_load_kwargs(rm_path, "reward model")
        except zoo.ZooError as e:
            raise RewardError(str(e)) from None
    if kind == "file":
        check_code_file(arg.rsplit(":", 1)[0], allow_code)


def cli_command(config_file: str = "config.yaml") -> str:
    return f"python -m rlhf_core train {config_file}"


def accelerate_command(config_file: str = "config.yaml", gpus: int = 2) -> str:
    return (f"accelerate launch --multi_gpu --num_processes {gpus} -m rlhf_core train {config_file} "
            "--set device=cuda")
