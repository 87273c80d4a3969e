"""The paper's labs: small, seed-fixed experiments that reproduce each takeaway's published shape.

From a notebook:

    from rlhf_core import labs
    result = labs.run("compounding_error", {"horizon": 32})   # dict of raw series
    labs.settings("compounding_error")                          # documented settings and bounds
    labs.shape_problems("compounding_error", result)            # [] when the shape is reproduced

From a shell: `python -m rlhf_core lab NAME [--quick] [--json] [--set key=value ...]`.
Every lab module follows the contract described in `labs/common.py`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError
from .common import config_key, field_specs, make_config, write_json_atomic


@dataclass(frozen=True)
class LabInfo:
    name: str
    takeaway: str  # T1..T5
    title: str


LABS = {
    "pipeline": LabInfo("pipeline", "T1", "demos -> SFT -> reward model -> online RL"),
    "rm_curve": LabInfo("rm_curve", "T3", "reward-model accuracy vs number of preference labels"),
    "overoptimization": LabInfo("overoptimization", "T3", "proxy vs gold reward as RL moves away (Gao et al.)"),
    "best_of_n": LabInfo("best_of_n", "T3", "best-of-n sampling against a proxy reward"),
    "prompt_oirl": LabInfo("prompt_oirl", "T3", "choosing prompts with an offline reward model"),
    "compounding_error": LabInfo("compounding_error", "T2", "behaviour cloning vs online imitation over horizon T"),
    "action_space": LabInfo("action_space", "T4", "vocabulary size and reward sparsity vs steps to learn"),
    "credit": LabInfo("credit", "T4", "per-token credit: PPO's GAE vs GRPO's and RLOO's one number per completion"),
    "stability": LabInfo("stability", "T5", "clipped on-policy PPO vs unclipped, stale and Q-learning"),
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


def settings(name: str) -> list[dict]:
    """The lab's documented settings with defaults and bounds (for widgets and --help)."""
    return field_specs(module(name).Config)


def run(name: str, overrides: dict[str, Any] | None = None, quick: bool = False, progress=None) -> dict:
    mod = module(name)
    return mod.run(config(name, overrides, quick), progress)


def shape_problems(name: str, result: dict) -> list[str]:
    return module(name).shape_problems(result)


def cache_path(root: str, name: str, cfg) -> str:
    """Where a finished result for this exact config is kept (runs root/.labs/NAME/KEY.json)."""
    mod = module(name)
    return os.path.join(root, ".labs", name, f"{config_key(name, mod.VERSION, cfg)}.json")


def run_lab(name: str, quick: bool = False, as_json: bool = False, overrides: dict | None = None,
            out: str | None = None, progress_file: str | None = None) -> int:
    """The CLI: run a lab, print its JSON (or a summary), optionally write it to OUT. Exit 0 when the
    lab ran (whether or not the shape was reproduced: that is a finding, reported in the output)."""
    try:
        cfg = config(name, overrides, quick)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def progress(fraction: float, message: str) -> None:
        if progress_file:
            write_json_atomic(progress_file, {"fraction": fraction, "message": message})
        elif not as_json:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    try:
        result = module(name).run(cfg, progress)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a failed lab says why in one line (the app shows it)
        import traceback

        traceback.print_exc()
        print(f"error: lab '{name}' failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    result["shape_problems"] = shape_problems(name, result)
    if out:
        write_json_atomic(out, result)
    if as_json:
        print(json.dumps(result))
    else:
        print(f"{name} ({LABS[name].takeaway}: {LABS[name].title}) in {result.get('runtime_s')} s")
        for key, value in result.items():
            if key in ("lab", "config", "timings", "shape_problems") or isinstance(value, dict):
                continue
            print(f"  {key}: {value}")
        print("  published shape: " + ("reproduced" if not result["shape_problems"]
                                       else "NOT reproduced: " + "; ".join(result["shape_problems"])))
    return 0
