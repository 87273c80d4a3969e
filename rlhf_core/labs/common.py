"""What every lab shares: config fields with bounds, progress reporting, the result cache, fits.

A lab is a module with a `Config` dataclass (every field documented through `knob(...)`), a `QUICK`
dict of overrides for the test-sized run, a `LARGEST` dict (the heaviest settings the UI allows), `run(cfg, progress) -> dict` and
`shape_problems(result) -> list[str]`, which states in code the published shape the lab must
reproduce (empty list = reproduced). Pages, the CLI and the tests all use the same functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Any, Callable

from ..config import ConfigError

ProgressFn = Callable[[float, str], None]


def knob(default, help: str, lo=None, hi=None, choices=None, advanced=False):
    """A documented config field. `lo`/`hi`/`choices` bound user input (UI widgets and --set); the
    costly fields' bounds are the lab's budget: each lab's LARGEST settings (all those maxima
    together) run in <= 60 s on 2 cores. `advanced` fields sit behind an expander in the app."""
    meta = {"help": help, "lo": lo, "hi": hi, "choices": choices, "advanced": advanced}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_specs(config_cls) -> list[dict]:
    """Field name, default, type and bounds, for building widgets without knowing the lab."""
    out = []
    for f in dataclasses.fields(config_cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append({"name": f.name, "default": default, "type": type(default).__name__, **f.metadata})
    return out


def _check_value(name: str, value, default, meta: dict):
    """Coerce one value to the type of its default and check its bounds; the message names the field."""
    kind = type(default)
    if kind is list:
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name}: expected a non-empty list, got {value!r}")
        item_default = default[0] if default else 0
        return [_check_value(name, v, item_default, meta) for v in value]
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            coerced = value
        elif kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            coerced = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise TypeError
            coerced = float(value)
        else:
            coerced = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from None
    if isinstance(coerced, float) and not math.isfinite(coerced):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    if meta.get("choices") is not None and coerced not in meta["choices"]:
        raise ConfigError(f"{name}: must be one of {meta['choices']}, got {value!r}")
    if meta.get("lo") is not None and coerced < meta["lo"]:
        raise ConfigError(f"{name}: must be >= {meta['lo']}, got {value!r}")
    if meta.get("hi") is not None and coerced > meta["hi"]:
        raise ConfigError(f"{name}: must be <= {meta['hi']}, got {value!r}")
    return coerced


def make_config(config_cls, overrides: dict[str, Any] | None = None, quick: dict | None = None):
    """Build a lab config from defaults, then the quick settings, then user overrides (checked)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    for source in (quick or {}), (overrides or {}):
        for name, value in source.items():
            if name not in fields:
                raise ConfigError(f"{name}: unknown setting (known: {', '.join(fields)})")
            f = fields[name]
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            values[name] = _check_value(name, value, default, f.metadata)
    cfg = config_cls(**values)
    check = getattr(cfg, "check", None)
    if check:
        check()
    return cfg


def config_key(lab: str, version: int, cfg) -> str:
    """Cache key: the lab, its result-format version and every config value."""
    blob = json.dumps({"lab": lab, "version": version, "config": dataclasses.asdict(cfg)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class Progress:
    """Forwards (fraction, message) to a callback and keeps the stage timings for the result."""

    def __init__(self, callback: ProgressFn | None = None):
        self.callback = callback
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self._stage, self._stage_t = None, self.t0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.perf_counter()
        if self._stage is not None:
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + now - self._stage_t, 3)
        self._stage, self._stage_t = message.split(":")[0], now
        if self.callback:
            self.callback(max(0.0, min(1.0, fraction)), message)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def setup_torch(threads: int, seed: int) -> None:
    """One torch thread is the measured fastest for tiny models on a shared 2-core box."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lab_workers() -> int:
    """Processes a lab may fork for independent pieces: one per core, at most 2 (the labs are sized
    for a 2-core laptop); RLHF_EXPLORER_LAB_WORKERS=1 keeps everything in one process."""
    return max(1, min(2, os.cpu_count() or 1, int(os.environ.get("RLHF_EXPLORER_LAB_WORKERS", "2"))))


def fork_map(fn: Callable, items: list, workers: int, on_done: Callable[[Any, int], None] | None = None) -> dict:
    """{item: fn(item)} computed in `workers` forked processes (the children inherit everything the
    parent loaded, so nothing is pickled but the item and the result). fn must seed itself from its
    item, so results do not depend on the process or the order."""
    results: dict = {}
    if workers <= 1 or len(items) <= 1:
        for item in items:
            results[item] = fn(item)
            if on_done:
                on_done(item, len(results))
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_done:
                on_done(futures[fut], len(results))
    return results


def quiet_libraries() -> None:
    from ..worker import _quiet_libraries

    _quiet_libraries()


# ---- fits: the reference curves drawn over the measured ones --------------------------------------

def fit_scaled(xs, ys, basis: Callable[[float], float]) -> float:
    """Least-squares c for y ~ c * basis(x) (a curve through the origin)."""
    num = sum(basis(x) * y for x, y in zip(xs, ys))
    den = sum(basis(x) ** 2 for x in xs)
    return num / den if den else 0.0


def fit_two_terms(xs, ys, f1: Callable[[float], float], f2: Callable[[float], float]) -> tuple[float, float]:
    """Least-squares (a, b) for y ~ a*f1(x) + b*f2(x), e.g. Gao et al.'s d*(alpha - beta*log d)."""
    import numpy as np

    A = np.array([[f1(x), f2(x)] for x in xs], dtype=float)
    y = np.asarray(ys, dtype=float)
    if len(xs) < 2:
        return 0.0, 0.0
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(sol[0]), float(sol[1])


def r_squared(ys, preds) -> float:
    mean = sum(ys) / len(ys)
    ss_tot = sum((y - mean) ** 2 for y in ys)
    ss_res = sum((y - p) ** 2 for y, p in zip(ys, preds))
    return 1.0 - ss_res / ss_tot if ss_tot else 0.0


_SCRATCH: list[str] = []


def lab_scratch_dir(name: str) -> str:
    """A private scratch folder (TRL's output_dir, a policy saved for GRPO to reload), removed
    when the process exits."""
    import atexit
    import shutil
    import tempfile

    if not _SCRATCH:
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _SCRATCH])
    path = tempfile.mkdtemp(prefix=f"rlhf-lab-{name}-")
    _SCRATCH.append(path)
    return path


def rounded(xs, digits: int = 4) -> list:
    return [None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), digits)
            for x in xs]


def write_json_atomic(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
