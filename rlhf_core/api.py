"""The Python API for notebooks and scripts: start runs, read them as pandas tables, retune or stop
them while they train, and wait for them.

It goes through the same worker and run store as the app, so a run started here shows up in the
app's Runs & Compare page, and a run started in the app can be opened here by its id:

    import rlhf_core
    run = rlhf_core.start("classic-grpo", steps=30)      # a preset name, a YAML path, a dict ...
    run.watch()                                          # live charts in the notebook until it ends
    run.set(kl_coef=0.5)                                 # applied at the next step
    run.metrics()[["reward", "kl"]].tail()               # one row per step
    run.samples()                                        # the latest step's samples
    rlhf_core.compare([run, other], "reward")            # overlay, as in Runs & Compare

Runs live under ./runs (RLHF_EXPLORER_RUNS overrides it); pass `root=` to use another folder.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable

from . import runs as _runs
from .config import ConfigError, RunConfig
from .store import FINAL_STATUSES, RunStore


class Run:
    """A handle on one run in a runs folder. It holds no state of its own: every call reads the store."""

    def __init__(self, run_id: str, root: str | None = None):
        self.root = _runs.runs_root(root)
        self.id = _runs.validate_run_id(run_id)
        self.dir = _runs.run_dir(run_id, self.root)
        if not os.path.isdir(self.dir):
            raise _runs.RunError(f"run '{run_id}' not found in {self.root}")

    def __repr__(self) -> str:
        info = self.info()
        return f"Run({self.id!r}, status={info.status!r}, steps={info.steps_done}/{info.steps_total})"

    def info(self) -> _runs.RunInfo:
        """Status, config, steps done and the last metrics (the app's run table reads the same)."""
        return _runs.info(self.id, self.root)

    @property
    def status(self) -> str:
        return self.info().status

    @property
    def config(self) -> RunConfig:
        return RunConfig.parse(self.info().config)

    def rows(self) -> list[dict]:
        """Every stored step's metrics, as dicts (what the plots take)."""
        return RunStore(self.dir).metrics_since(-1)

    def metrics(self):
        """One row per step, indexed by step: the unified metrics (reward, kl, objective, entropy,
        ...) and TRL's own logs under trl/... (see DESIGN.md for the names)."""
        import pandas as pd

        rows = self.rows()
        return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame(index=pd.Index([], name="step"))

    def samples(self, step: int | None = None):
        """The samples of one step (the latest by default): prompt, completion, reward and KL."""
        import pandas as pd

        store = RunStore(self.dir)
        columns = ["step", "idx", "prompt", "completion", "reward", "kl"]
        found = store.samples(step) if step is not None or store.sample_steps() else []
        return pd.DataFrame([{k: s.get(k) for k in columns} for s in found], columns=columns)

    def meta(self) -> dict:
        """What the worker recorded about the run: its config, pid, timings and, for DPO, a summary
        of its preference pairs with a few examples (`meta()["dpo_pairs"]`)."""
        return RunStore(self.dir).meta()

    def events(self):
        """Live knob changes and rejected control messages, with the step they took effect at."""
        import pandas as pd

        return pd.DataFrame(RunStore(self.dir).events())

    def set(self, **knobs: float) -> None:
        """Change live knobs (kl_coef; clip_range for GRPO, RLOO and PPO), applied at the next step."""
        _runs.set_knobs(self.id, self.root, **knobs)

    def stop(self, wait: float = 10.0) -> str:
        """Ask the run to stop; wait up to `wait` seconds for it to end; return its status."""
        return _runs.stop(self.id, self.root, wait=wait)

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> str:
        """Block until the run has ended (finished, stopped, failed, diverged or crashed); return
        that status. A TimeoutError after `timeout` seconds leaves the run going."""
        return self._poll(lambda info: False, poll, timeout)

    def _poll(self, done, every: float, timeout: float | None, on_tick=None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            _runs.schedule(self.root)  # a queued run starts when a slot frees up, even with no app open
            info = self.info()
            if on_tick is not None:
                on_tick()
            if info.status in FINAL_STATUSES or done(info):
                return info.status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} is still {info.status} after {timeout} s")
            time.sleep(every)

    def figure(self):
        """The Playground's live panels for this run, as an Altair chart."""
        from .plots import run_figure

        return run_figure(self)

    def watch(self, every: float = 1.0, timeout: float | None = None, until_step: int | None = None) -> str:
        """Redraw this run's charts in the notebook every `every` seconds until it ends, or until
        it has stored `until_step` steps (to change a knob there). An IPython display handle; no
        widget extension needed. Returns the status it stopped watching at."""
        from IPython.display import display

        handle = display(self.figure(), display_id=True)
        return self._poll(lambda info: until_step is not None and info.steps_done >= until_step, every, timeout,
                          on_tick=lambda: handle.update(self.figure()))


def _resolve_config(config: Any, overrides: dict[str, Any]) -> RunConfig:
    """A preset name, a YAML file, a RunConfig, a dict of knobs or None (the defaults), plus overrides."""
    from .presets import list_presets

    if config is None:
        cfg = RunConfig()
    elif isinstance(config, RunConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = RunConfig.parse(config)
    elif isinstance(config, str) and config.endswith((".yaml", ".yml")):
        cfg = RunConfig.from_yaml(config)
    elif isinstance(config, str):
        presets = {p.name: p for p in list_presets()}
        if config not in presets:
            raise ConfigError(f"config: no preset named {config!r} (known: {', '.join(presets)}), "
                              "and it is not a .yaml file")
        cfg = presets[config].config
    else:
        raise ConfigError(f"config must be a preset name, a .yaml path, a dict or a RunConfig, "
                          f"got {type(config).__name__}")
    return cfg.with_overrides(overrides) if overrides else cfg


def start(config: Any = None, *, root: str | None = None, allow_code: bool = False, **overrides) -> Run:
    """Queue a run and start it in a worker process as soon as a slot is free (at once, unless
    another run is training); return its handle. `config` is a preset name ("classic-grpo"), a
    YAML path, a dict of knobs, a RunConfig or None; keyword arguments override single knobs.
    Bad settings raise ConfigError naming the knob, before anything is started."""
    cfg = _resolve_config(config, overrides)
    _runs.preflight(cfg, allow_code=allow_code)
    return Run(_runs.submit(cfg, root=root, allow_code=allow_code), root)


def sweep(name_or_path: str, *, root: str | None = None, **overrides) -> list[Run]:
    """Queue a ready-made sweep (presets/sweeps/NAME.yaml, or a path); overrides apply to every run."""
    from .presets import SWEEPS_DIR, load_sweep

    path = name_or_path if name_or_path.endswith((".yaml", ".yml")) else os.path.join(SWEEPS_DIR, f"{name_or_path}.yaml")
    configs = [c.with_overrides(overrides) if overrides else c for c in load_sweep(path).configs]
    for cfg in configs:
        _runs.preflight(cfg)
    started = []
    group = _runs.new_sweep_id(os.path.splitext(os.path.basename(path))[0])
    for cfg in configs:
        started.append(Run(_runs.submit(cfg, root=root, sweep=group), root))
        time.sleep(0.01)  # distinct creation times keep the queue in order
    return started


def open_run(run_id: str, root: str | None = None) -> Run:
    """A handle on an existing run, e.g. one started in the app (its id is in the page's URL)."""
    return Run(run_id, root)


def list_runs(root: str | None = None):
    """Every run in the folder, newest first: id, status, algorithm, β, steps, last reward and KL."""
    import pandas as pd

    rows = [{"id": r.id, "status": r.status, "algorithm": r.config.get("algorithm"),
             "kl_coef": r.config.get("kl_coef"), "steps_done": r.steps_done, "steps_total": r.steps_total,
             "reward": r.last.get("reward"), "kl": r.last.get("kl")} for r in _runs.list_runs(root)]
    return pd.DataFrame(rows, columns=["id", "status", "algorithm", "kl_coef", "steps_done", "steps_total",
                                       "reward", "kl"])


def _rows_by_label(handles: Iterable[Run | str], root: str | None) -> dict[str, list[dict]]:
    out = {}
    for h in handles:
        run = h if isinstance(h, Run) else Run(h, root)
        cfg = run.info().config
        out[f"{run.id} ({cfg.get('algorithm')}, β {cfg.get('kl_coef')})"] = run.rows()
    return out


def compare(handles: Iterable[Run | str], metric: str = "reward", root: str | None = None):
    """One metric of several runs overlaid against the step (a Plotly figure)."""
    from .plots import overlay_figure

    return overlay_figure(_rows_by_label(handles, root), metric)


def frontier(handles: Iterable[Run | str], root: str | None = None):
    """Reward against KL along each run (a Plotly figure): where each run settles on the trade-off."""
    from .plots import frontier_figure

    return frontier_figure(_rows_by_label(handles, root))
