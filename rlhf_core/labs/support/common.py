"""What every lab shares: config fields with bounds, progress reporting, the result cache, fits.

A lab is a module with a `Config(LabConfig)` (every field documented through `knob(...)`), a `QUICK`
dict of overrides for the test-sized run, a `LARGEST` dict (the heaviest settings the UI allows),
`run(cfg, progress) -> dict` (the raw series), `CHECKS` (the falsifiable parts of the published
shape, see `verdict.py`; empty for an illustration, which then says why in `ILLUSTRATION`) and
`headline(result) -> str` (the figures quoted in the README's table). Pages, the CLI, the evidence
script and the tests all use the same functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...config import ConfigError, finite_and_not_bool, format_validation_error

ProgressFn = Callable[[float, str], None]


class LabConfig(BaseModel):
    """A lab's settings: validated by pydantic like `RunConfig`, from `knob()` fields. Besides
    pydantic's own bounds, list settings check each item against the field's bounds and choices,
    and `check()` holds a lab's cross-field budget rules."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _finite_numbers(cls, v: Any, info):
        return finite_and_not_bool(cls, v, info.field_name)

    @field_validator("*", mode="after")
    @classmethod
    def _items_within_bounds(cls, v: Any, info):
        extra = cls.model_fields[info.field_name].json_schema_extra or {}
        for item in (v if isinstance(v, list) else [v]):
            if extra.get("choices") is not None and item not in extra["choices"]:
                raise ValueError(f"must be one of {extra['choices']}")
            if isinstance(v, list) and extra.get("lo") is not None and item < extra["lo"]:
                raise ValueError(f"must have every item ≥ {extra['lo']}")
            if isinstance(v, list) and extra.get("hi") is not None and item > extra["hi"]:
                raise ValueError(f"must have every item ≤ {extra['hi']}")
        return v

    def check(self) -> None:
        """Cross-field rules (a lab's cost budget); raise ConfigError naming the field."""


def knob(default, help: str, lo=None, hi=None, choices=None, advanced=False):
    """A documented lab setting. `lo`/`hi`/`choices` bound user input (UI widgets and --set; for a
    list, every item); the costly fields' bounds are the lab's budget, and `bench --labs` measures
    what a lab's default and LARGEST settings take against `bench.LAB_BUDGET_S`. `advanced` fields sit
    behind an expander in the app."""
    extra = {"lo": lo, "hi": hi, "choices": choices, "advanced": advanced}
    if isinstance(default, list):
        return Field(default_factory=lambda: list(default), description=help, min_length=1, json_schema_extra=extra)
    return Field(default, description=help, ge=lo, le=hi, json_schema_extra=extra)


def _default(field):
    return field.get_default(call_default_factory=True)


def field_specs(config_cls) -> list[dict]:
    """Field name, default, type and bounds, for building widgets without knowing the lab."""
    return [{"name": name, "default": _default(f), "type": type(_default(f)).__name__, "help": f.description,
             **(f.json_schema_extra or {})} for name, f in config_cls.model_fields.items()]


def make_config(config_cls, overrides: dict[str, Any] | None = None, quick: dict | None = None):
    """Build a lab config from defaults, then the quick settings, then user overrides (checked)."""
    values = {**(quick or {}), **(overrides or {})}
    try:
        cfg = config_cls(**values)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, known=list(config_cls.model_fields), what="setting")) from None
    cfg.check()
    return cfg


def config_key(lab: str, code_hash: str, cfg, seeds: int = 1) -> str:
    """Cache key: the lab, the hash of its code and assets, every config value and the seed count."""
    blob = json.dumps({"lab": lab, "code": code_hash, "config": cfg.model_dump(), "seeds": seeds},
                      sort_keys=True)
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
    from ...worker import _quiet_libraries

    _quiet_libraries()


# ---- least-squares fits of the published functional forms, drawn over the measured points --------------------------------------

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


def paired_ci(a, b, z: float = 1.96) -> dict:
    """Mean of a - b over paired items (e.g. prompts) with its normal-approximation interval."""
    import statistics

    diffs = [x - y for x, y in zip(a, b)]
    mean = statistics.fmean(diffs)
    sem = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else math.inf
    return {"mean": mean, "low": mean - z * sem, "high": mean + z * sem, "n": len(diffs)}


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
