"""The training worker: `python -m rlhf_core.worker RUN_DIR [--allow-code]`.

Started by `rlhf_core.runs` as a subprocess in its own session (at lowered priority from its
first stored step on), or run in
the foreground by `python -m rlhf_core train`. It reads RUN_DIR/config.yaml, builds the TRL
trainer, and writes every step (metrics, samples, knob events) to RUN_DIR/run.sqlite in one
transaction. It obeys RUN_DIR/control.json (stop, live kl_coef / clip_range) and SIGTERM.

Final statuses: finished, stopped (control or SIGTERM), diverged (NaN/inf reward or loss),
failed (any other error; message and traceback kept in the store). A worker killed outright
leaves status running/starting behind with a dead pid, which readers report as crashed.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
import traceback
from typing import Callable

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .config import ConfigError, RunConfig  # noqa: E402
from .control import ControlWatcher, knob_problem  # noqa: E402
from .store import RunStore  # noqa: E402

ProgressFn = Callable[[int, int, dict], None]


def _prepare_environment(cfg: RunConfig) -> None:
    """Decide offline mode before transformers is imported: huggingface_hub reads it at import."""
    from . import zoo

    if zoo.needs_hub(cfg.policy, cfg.reward) and not zoo.hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"


def _make_callback(adapter_box: dict, recorder, store: RunStore | None, watcher: ControlWatcher,
                   total: int, progress: ProgressFn | None):
    from transformers import TrainerCallback

    from .algorithms.common import Diverged, average_logs, unified_metrics

    class StepCallback(TrainerCallback):
        """Turns TRL's per-optimizer-step logs into one stored row per rollout and obeys control."""

        def __init__(self):
            self.logs: list[dict] = []
            self.t_last = time.perf_counter()

        def on_train_begin(self, args, state, control, **kw):
            self.t_last = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            adapter = adapter_box["adapter"]
            if not logs or "train_runtime" in logs:
                return
            self.logs.append(dict(logs))
            if state.global_step % adapter.rollout_steps:
                return
            step = state.global_step // adapter.rollout_steps
            raw = average_logs(self.logs)
            self.logs = []
            now = time.perf_counter()
            kl_coef, clip_range = adapter.knobs()
            roll = recorder.pop()
            if _processes() > 1:  # every process sampled part of the step: store all of it
                from accelerate.utils import gather_object

                roll = recorder.merge(gather_object([roll]))
            metrics = unified_metrics(roll, raw, adapter.metric_keys, kl_coef, clip_range, now - self.t_last)
            self.t_last = now
            if store is not None:
                store.write_step(step, metrics, roll.samples())
            if step == 1:
                _yield_priority()
            if progress is not None:
                progress(step, total, metrics)
            bad = [k for k in ("policy_loss", "value_loss", "reward") if isinstance(metrics.get(k), float)
                   and not math.isfinite(metrics[k])]
            # decided by the main process for all, so no process waits for a partner that stopped
            problem = _from_main(f"{bad[0]} became {metrics[bad[0]]} at step {step}" if bad else None)
            if problem:
                raise Diverged(problem)
            apply_control(adapter, watcher, store, step + 1)

    return StepCallback()


_NICE = {"after_first_step": 0}


def _yield_priority() -> None:
    """Lower this worker's CPU priority once its first step is stored. Until then it competes
    on equal terms with the app server and the browser, so the first point comes quickly; from
    then on they go first, so clicks answer quickly while it trains."""
    if _NICE["after_first_step"]:
        try:
            os.nice(_NICE["after_first_step"])
        except OSError:
            pass
        _NICE["after_first_step"] = 0


def apply_control(adapter, watcher: ControlWatcher, store: RunStore | None, next_step: int) -> None:
    """Apply a changed control message: stop, or live knob changes recorded as events."""
    from .algorithms.common import StopRequested

    msg = _from_main(watcher.poll() if _is_main() else None)
    if not msg:
        return
    if msg.get("stop"):
        raise StopRequested("stop requested")
    kl_coef, clip_range = adapter.knobs()
    for name, current, setter in (("kl_coef", kl_coef, adapter.set_kl_coef),
                                  ("clip_range", clip_range, adapter.set_clip_range)):
        value = msg.get(name)
        if value is None:
            continue
        # anyone can write the file: check it as the UI does (a knob the algorithm lacks reads None)
        problem = knob_problem(name, value) or (f"{name} is not a knob of this algorithm" if current is None else None)
        if problem:
            if store is not None:
                store.add_event(next_step, "control_rejected", {"name": name, "value": str(value),
                                                                 "problem": problem})
            continue
        if float(value) != current:
            setter(float(value))
            if store is not None:
                store.add_event(next_step, "knob", {"name": name, "from": current, "to": float(value)})


def _processes() -> int:
    from accelerate import PartialState

    return PartialState().num_processes


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _from_main(obj):
    """The main process's value of `obj`, on every process (under `accelerate launch`, only the
    main process reads the control file and decides to stop; the others follow at the same step)."""
    if _processes() == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj if _is_main() else None]
    broadcast_object_list(box)
    return box[0]


def _quiet_trainer(trainer) -> None:
    """TRL prints every log dict when tqdm is off; the store is our log."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)


def _quiet_libraries() -> None:
    """Deprecation chatter from transformers/TRL would bury real errors in worker.log."""
    import logging
    import warnings

    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="trl")
    logging.getLogger("trl").setLevel(logging.ERROR)

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import datasets

    datasets.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()


def _load_everything(cfg: RunConfig, run_dir: str, allow_code: bool, device: str):
    import torch

    from . import zoo
    from .prompts import prompt_texts, review_openings
    from .rewards import get_reward

    policy, tok = zoo.load_policy(cfg.policy, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    policy.to(device)
    reward = get_reward(cfg.reward, allow_code=allow_code)
    if cfg.algorithm == "ppo":
        prompts = review_openings(tok, cfg.prompt_tokens, "train")
    else:
        prompts = prompt_texts(tok, cfg.prompt_tokens, "train")
    if len(prompts) < cfg.prompts_per_step * cfg.generations_per_prompt:
        raise ConfigError(f"prompts_per_step x generations_per_prompt = "
                          f"{cfg.prompts_per_step * cfg.generations_per_prompt} exceeds the {len(prompts)} "
                          "available prompts")
    return policy, tok, reward, prompts


def run_worker(run_dir: str, allow_code: bool = False, progress: ProgressFn | None = None,
               install_sigterm: bool = True) -> str:
    """Train the run in RUN_DIR; return its final status. Never raises for run errors."""
    from accelerate import PartialState

    store_main = RunStore(run_dir, create=True)
    is_main = PartialState().is_main_process
    store = store_main if is_main else None
    t0 = time.time()

    def on_sigterm(signum, frame):
        from .algorithms.common import StopRequested

        raise StopRequested("SIGTERM")

    if install_sigterm:
        signal.signal(signal.SIGTERM, on_sigterm)
    if store:
        store.set_meta(pid=os.getpid(), started=t0)
        store.set_status("starting")
    try:
        from .algorithms.common import Diverged, StopRequested
        from .rewards import RewardError
        from .zoo import ZooError
    except Exception as e:  # noqa: BLE001 - a broken install must still end in a status
        if store:
            store.set_status("failed", f"import error: {e}", traceback.format_exc())
        return "failed"

    status, message, detail = "failed", None, None
    try:
        cfg = RunConfig.from_yaml(os.path.join(run_dir, "config.yaml"))
        if store:
            store.set_meta(steps_total=cfg.steps, algorithm=cfg.algorithm, config=cfg.model_dump(),
                           processes=_processes())
        _prepare_environment(cfg)
        import torch
        from transformers import set_seed

        _quiet_libraries()

        from .algorithms import dpo, grpo, ppo, rloo
        from .algorithms.common import RolloutRecorder, resolve_device

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = resolve_device(cfg)
        set_seed(cfg.seed)
        policy, tok, reward, prompts = _load_everything(cfg, run_dir, allow_code, device)
        recorder = RolloutRecorder(reward, tok, cfg.temperature)
        watcher = ControlWatcher(run_dir)
        box: dict = {}
        callback = _make_callback(box, recorder, store, watcher, cfg.steps, progress)
        out_dir = os.path.join(run_dir, "trl")
        if cfg.algorithm == "ppo":
            adapter = ppo.build(cfg, policy, tok, recorder, prompts, policy.config._name_or_path, out_dir,
                                device, [callback])
        else:
            module = {"grpo": grpo, "rloo": rloo, "dpo": dpo}[cfg.algorithm]
            adapter = module.build(cfg, policy, tok, recorder, prompts, out_dir, device, [callback])
        box["adapter"] = adapter
        if store and getattr(adapter, "meta", None):  # e.g. DPO's preference pairs, made at the start
            store.set_meta(**adapter.meta)
        _quiet_trainer(adapter.trainer)
        apply_control(adapter, watcher, store, 1)  # a stop or knob change sent while we were loading
        if store:
            store.set_status("running")
        adapter.train()
        status = "finished"
        if device == "cuda" and store:  # for `bench --gpu`: what the run needed of the GPU
            store.set_meta(cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20)
    except StopRequested as e:
        status, message = "stopped", str(e)
    except Diverged as e:
        status, message = "diverged", str(e)
    except (ConfigError, ZooError, RewardError) as e:
        status, message = "failed", str(e)
    except Exception as e:  # noqa: BLE001 - the run fails, the worker reports it
        status, message, detail = "failed", f"{type(e).__name__}: {e}", traceback.format_exc()
    if store:
        try:
            store.set_meta(ended=time.time())
            store.set_status(status, message, detail)
        except Exception as e:  # noqa: BLE001 - e.g. disk full: say so where the UI can find it
            print(f"error: could not record final status '{status}' ({message}): {e}", file=sys.stderr, flush=True)
            return "crashed"
    return status


def _start_next_queued(run_dir: str) -> None:
    """A finishing worker frees a slot: start the next queued run, so queues drain headless."""
    from . import runs

    root = os.path.dirname(os.path.abspath(run_dir))
    try:
        runs.schedule(root)
        runs.top_up_pool(root)  # a slot is free again: have a warm worker ready for the next Start
        runs.prune_now_and_then(root)  # old runs and the disk cap, when the operator set them
    except Exception as e:  # noqa: BLE001 - the run itself is done; a queue problem is only logged
        print(f"could not start the next queued run: {e}", file=sys.stderr)


def preload() -> None:
    """What a warm worker does before it has a job: the imports and first loads that dominate
    a cold start (torch, transformers, TRL's trainers, the default policy, reward and prompts)."""
    import torch  # noqa: F401
    import trl  # noqa: F401
    from trl import DPOTrainer, GRPOTrainer, RLOOTrainer  # noqa: F401
    from trl.experimental.ppo import PPOTrainer  # noqa: F401

    from . import zoo
    from .prompts import prompt_texts
    from .rewards import get_reward

    _quiet_libraries()
    cfg = RunConfig()
    _, tok = zoo.load_policy(cfg.policy)
    get_reward(cfg.reward)
    prompt_texts(tok, cfg.prompt_tokens, "train")


def serve_warm(folder: str, owner_pid: int) -> int:
    from . import pool

    # a warm worker imports transformers before it knows its job, and huggingface_hub reads the
    # offline switch at import: it starts offline and is handed only runs that need nothing from
    # the hub (runs.launch starts those cold, after _prepare_environment)
    os.environ["HF_HUB_OFFLINE"] = "1"

    preload()
    job = pool.wait_for_job(folder, owner_pid)
    if job is None:
        return 0
    status = run_worker(job["run_dir"], allow_code=bool(job.get("allow_code")))
    _start_next_queued(job["run_dir"])
    return 0 if status in ("finished", "stopped") else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlhf_core.worker")
    p.add_argument("run_dir", nargs="?")
    p.add_argument("--warm", metavar="POOL_DIR", help="start as a warm pooled worker waiting for a job")
    p.add_argument("--owner", type=int, default=None, help="pid whose exit ends an idle warm worker")
    p.add_argument("--allow-code", action="store_true", help="allow file:<path>:<fn> rewards")
    p.add_argument("--nice", type=int, default=5,
                   help="lower the worker's CPU priority by this much once its first step is stored")
    p.add_argument("--boot-nice", type=int, default=0,
                   help="lower it by this much from the start (a warm worker booting while a run trains)")
    a = p.parse_args(argv)
    if a.boot_nice:
        try:
            os.nice(a.boot_nice)
        except OSError:
            pass
    _NICE["after_first_step"] = max(0, a.nice - a.boot_nice)
    if a.warm:
        return serve_warm(a.warm, a.owner or os.getppid())
    if not a.run_dir:
        p.error("RUN_DIR is required")
    status = run_worker(a.run_dir, allow_code=a.allow_code)
    _start_next_queued(a.run_dir)
    return 0 if status in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
