"""The paper's labs: small, seed-fixed experiments that reproduce each takeaway's published shape.

From a notebook:

    from rlhf_core import labs
    result = labs.run("compounding_error", {"horizon": 32})   # dict of raw series
    labs.settings("compounding_error")                          # documented settings and bounds
    labs.shape_problems("compounding_error", result)            # [] when every check held
    labs.verdict("compounding_error", result)["summary"]         # 'reproduced on 1 of 1 seed'
    many = labs.run_seeds("compounding_error", seeds=3)          # one result per seed + the verdict
    many["verdict"]["state"], many["verdict"]["k"]               # 'reproduced' / 'not reproduced' /
                                                                 # 'illustration', and k of n

From a shell: `python -m rlhf_core lab NAME [--quick] [--json] [--seeds N] [--set key=value ...]`.
Every lab module follows the contract described in `labs/support/common.py`; verdicts are
described in `labs/support/verdict.py`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError
from .support import verdict as verdicts
from .support.common import config_key, field_specs, fork_map, lab_workers, make_config, write_json_atomic


@dataclass(frozen=True)
class LabInfo:
    name: str
    takeaway: str  # T1..T5
    title: str


LABS = {
    "pipeline": LabInfo("pipeline", "T1", "demos -> SFT -> reward model -> online RL"),
    "offline_online": LabInfo("offline_online", "T1", "offline DPO vs online RLHF on the same preference pairs, from two sources"),
    "rm_curve": LabInfo("rm_curve", "T3", "reward-model accuracy vs number of preference labels"),
    "overoptimization": LabInfo("overoptimization", "T3", "proxy vs gold′ reward as RL moves away (Gao et al.)"),
    "best_of_n": LabInfo("best_of_n", "T3", "best-of-n sampling against clean, noisy and blind proxies"),
    "prompt_oirl": LabInfo("prompt_oirl", "T3", "choosing prompts with an offline reward model"),
    "compounding_error": LabInfo("compounding_error", "T2", "behaviour cloning vs online imitation over horizon T"),
    "action_space": LabInfo("action_space", "T4", "vocabulary size and reward sparsity vs steps to learn"),
    "credit": LabInfo("credit", "T4", "per-token credit: PPO's GAE vs GRPO's and RLOO's one number per completion"),
    "stability": LabInfo("stability", "T5", "clipped vs unclipped PPO as batches are reused; fresh vs replayed data"),
}


def module(name: str):
    if name not in LABS:
        raise ConfigError(f"unknown lab '{name}' (known: {', '.join(LABS)})")
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            raise ConfigError(f"lab '{name}' is not part of this build") from None
        raise


def available() -> list[str]:
    """Labs whose module exists in this build."""
    here = os.path.dirname(__file__)
    return [n for n in LABS if os.path.exists(os.path.join(here, f"{n}.py"))]


def config(name: str, overrides: dict[str, Any] | None = None, quick: bool = False):
    mod = module(name)
    return make_config(mod.Config, overrides, mod.QUICK if quick else None)


def evidence_settings(name: str) -> dict[str, Any]:
    """The settings of the lab's 5-seed evidence run, as overrides of its defaults. A lab whose
    defaults are lighter than its registered design (to answer within a minute on 2 cores) says
    what differs in its EVIDENCE; for the others the defaults are the evidence settings ({})."""
    return dict(getattr(module(name), "EVIDENCE", {}))


def settings(name: str) -> list[dict]:
    """The lab's documented settings with defaults and bounds (for widgets and --help)."""
    return field_specs(module(name).Config)


def run(name: str, overrides: dict[str, Any] | None = None, quick: bool = False, progress=None,
        **settings) -> dict:
    """One seed's raw result. Settings come as a dict or as keywords: run("rm_curve", seed=2)."""
    mod = module(name)
    return mod.run(config(name, {**(overrides or {}), **settings}, quick), progress)


def shape_problems(name: str, result: dict) -> list[str]:
    """What one result does not show of the lab's published shape ([] when every check held, and
    for an illustration, which has no checks)."""
    return verdicts.problems(module(name).CHECKS, result)


def per_seed_results(result: dict) -> list[dict]:
    """The one-seed results inside a result: itself, or each seed's of a `run_seeds` result."""
    return result["results"] if "results" in result else [result]


def verdict(name: str, result: dict) -> dict:
    """The three-state verdict over every seed in a result (one seed, or a `run_seeds` result),
    recomputed from the raw series with today's checks."""
    mod = module(name)
    return verdicts.judge(mod.CHECKS, per_seed_results(result), getattr(mod, "ILLUSTRATION", ""))


def seed_list(cfg, n: int) -> list[int]:
    """Seeds for n replicates: cfg.seed, then onwards. A lab that runs several seeds inside one
    replicate (T5's `seeds`) steps by that many, so replicates never share a seed."""
    stride = getattr(cfg, "seeds", 1)
    return [cfg.seed + i * stride for i in range(n)]


def run_seeds(name: str, overrides: dict[str, Any] | None = None, seeds: int = 1, quick: bool = False,
              progress=None, **settings) -> dict:
    """Run the lab on `seeds` seeds, split over the lab's worker processes (each replicate then
    runs its own pieces in one process), and judge them together. Settings come as a dict or as
    keywords."""
    import time

    overrides = {**(overrides or {}), **settings}
    cfg = config(name, overrides, quick)
    if seeds == 1:
        result = module(name).run(cfg, progress)
        result["verdict"] = verdict(name, result)
        return result
    t0 = time.perf_counter()
    seed_values = seed_list(cfg, seeds)
    if progress:
        progress(0.0, f"seeds: running {seeds} seeds ({', '.join(map(str, seed_values))})")

    def done(seed, count):
        if progress:
            progress(count / seeds, f"seeds: {count} of {seeds} done (seed {seed})")

    _warm_imports()
    one = functools.partial(_one_seed, name=name, overrides=overrides or {}, quick=quick)
    by_seed = fork_map(one, seed_values, min(lab_workers(), seeds), on_done=done)
    results = [by_seed[s] for s in seed_values]
    out = {"lab": name, "config": results[0]["config"], "seeds": seed_values, "results": results,
           "runtime_s": round(time.perf_counter() - t0, 2)}
    out["verdict"] = verdict(name, out)
    return out


def _one_seed(seed: int, name: str, overrides: dict, quick: bool) -> dict:
    """One replicate, in its own forked process (module level: the pool pickles the function)."""
    os.environ["RLHF_EXPLORER_LAB_WORKERS"] = "1"  # the replicates already fill the cores
    return module(name).run(config(name, {**overrides, "seed": seed}, quick), None)


def _warm_imports() -> None:
    """Import the heavy libraries once before forking, so every replicate inherits them."""
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401


@functools.lru_cache(maxsize=None)
def code_and_assets_hash(name: str) -> str:
    """A hash of what a lab's result depends on besides its settings: the lab's module, the shared
    lab support code and the embedded zoo assets. A cached result from older code or older models
    gets another key, so it is never shown as current."""
    here = os.path.dirname(os.path.abspath(__file__))
    from ..zoo import ASSETS

    files = [os.path.join(here, f"{name}.py")]
    files += sorted(os.path.join(here, "support", f) for f in os.listdir(os.path.join(here, "support"))
                    if f.endswith(".py"))
    for folder, _dirs, names in sorted(os.walk(ASSETS)):
        files += sorted(os.path.join(folder, f) for f in names if f.endswith((".json", ".safetensors")))
    digest = hashlib.sha1()
    for path in files:
        digest.update(os.path.relpath(path, os.path.dirname(here)).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


STORED_RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "docs", "lab-results")


def stored_result_path(name: str) -> str:
    return os.path.join(STORED_RESULTS, f"{name}.json")


@functools.lru_cache(maxsize=len(LABS))
def _read_stored(path: str, mtime_ns: int) -> dict:
    """A stored result parsed once per file version: the lab pages read them on every rerun, and
    parsing the T3 page's four took 168 ms on the AMD EPYC box. Callers must not modify it."""
    with open(path) as f:
        return json.load(f)


def stored_result(name: str) -> dict | None:
    """The committed evidence run of a lab at its evidence settings (written by
    scripts/lab_evidence.py): {"evidence": command, commit, machine, date; "result": the raw
    `run_seeds` result}, or None when this build has none. A stored result whose settings are no
    longer the lab's evidence settings is returned with "stale": True, for the page to say so, not
    to show."""
    module(name)
    path = stored_result_path(name)
    try:
        stored = dict(_read_stored(path, os.stat(path).st_mtime_ns))  # a copy: "stale" is set per call
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable stored lab result ({e})") from None
    expected = config(name, evidence_settings(name)).model_dump()
    stored["stale"] = per_seed_results(stored["result"])[0]["config"] != expected
    return stored


def cache_path(root: str, name: str, cfg, seeds: int = 1) -> str:
    """Where a finished result for this exact config and seed count is kept
    (runs root/.labs/NAME/KEY.json); the key also covers the lab's code and the zoo assets."""
    key = config_key(name, code_and_assets_hash(name), cfg, seeds)
    return os.path.join(root, ".labs", name, f"{key}.json")


def run_lab(name: str, quick: bool = False, as_json: bool = False, overrides: dict | None = None,
            out: str | None = None, progress_file: str | None = None, seeds: int = 1) -> int:
    """The CLI: run a lab on one or more seeds, print its JSON (or a summary), optionally write it
    to OUT. Exit 0 when the lab ran, whatever its verdict (that is a finding, reported in the output)."""
    try:
        config(name, overrides, quick)
        if not 1 <= seeds <= 10:
            raise ConfigError(f"--seeds must be between 1 and 10, got {seeds}")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def progress(fraction: float, message: str) -> None:
        if progress_file:
            write_json_atomic(progress_file, {"fraction": fraction, "message": message})
        elif not as_json:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    try:
        result = run_seeds(name, overrides, seeds, quick, progress)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a failed lab says why in one line (the app shows it)
        import traceback

        traceback.print_exc()
        print(f"error: lab '{name}' failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for one in per_seed_results(result):
        one["shape_problems"] = shape_problems(name, one)
    if out:
        write_json_atomic(out, result)
    if as_json:
        print(json.dumps(result))
    else:
        print(f"{name} ({LABS[name].takeaway}: {LABS[name].title}) in {result.get('runtime_s')} s")
        first = per_seed_results(result)[0]
        for key, value in first.items():
            if key in ("lab", "config", "timings", "shape_problems", "verdict") or isinstance(value, dict):
                continue
            print(f"  {key}: {value}")
        print(f"  verdict: {result['verdict']['summary']}")
    return 0
