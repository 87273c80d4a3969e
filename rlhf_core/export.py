"""Runs leave the app for the field's own tools: TensorBoard event files and trackio projects.

Both read a run only from its store (`run.sqlite`), so a live run exports the steps it has so
far and a crashed one every step it committed.

- TensorBoard: DIR/<run id>/ holds one event file with every metric per step at the wall time
  the worker stored it, the knob changes and each step's samples as text, and the config as
  hparams (the HParams tab) and as YAML text. `tensorboard --logdir DIR` shows several runs side
  by side. Exporting a run again replaces its event files.
- trackio (an optional install): one trackio run per run, named by its id, in a project; the
  runs of one sweep share a trackio group.
"""

from __future__ import annotations

import glob
import math
import os

import yaml

from .store import RunStore

EVENT_FILE_PATTERN = "events.out.tfevents.*"
SAMPLE_COLUMNS = ("prompt", "completion", "reward", "kl")


class ExportError(RuntimeError):
    """An export that cannot be made; the message names the run, the folder or the missing package."""


def _numeric(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _hparam(value):
    """TensorBoard's HParams take numbers, text and booleans; anything else is written as text."""
    return value if isinstance(value, (bool, int, float, str)) else repr(value)


def _samples_markdown(samples: list[dict]) -> str:
    """A step's samples as a Markdown table (TensorBoard's text tab renders it)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:+.3f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(SAMPLE_COLUMNS) + " |", "|" + "---|" * len(SAMPLE_COLUMNS)]
    lines += ["| " + " | ".join(cell(s.get(c)) for c in SAMPLE_COLUMNS) + " |" for s in samples]
    return "\n".join(lines)


def _knob_change_text(event: dict) -> str:
    return f"{event.get('name')}: {event.get('from')} → {event.get('to')} (from step {event['step']})"


def to_tensorboard(run_dir: str, out_dir: str) -> str:
    """Write a run as TensorBoard event files under out_dir/<run id>/; returns that folder."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError as e:  # tensorboard is in requirements.txt; a trimmed install may lack it
        raise ExportError(f"TensorBoard export needs the tensorboard package ({e}); pip install tensorboard") from None

    store = RunStore(run_dir)
    meta = store.meta()
    rows = store.metrics_since(-1)
    run_id = os.path.basename(os.path.normpath(run_dir))
    target = os.path.join(out_dir, run_id)
    try:
        os.makedirs(target, exist_ok=True)
        for old in glob.glob(os.path.join(target, EVENT_FILE_PATTERN)):
            os.remove(old)  # a second export replaces the first instead of doubling every point
    except OSError as e:
        raise ExportError(f"{target}: cannot write ({e.strerror or e})") from None

    step_time = {r["step"]: r["ts"] for r in rows}
    config = meta.get("config") or {}
    writer = SummaryWriter(log_dir=target)
    try:
        for row in rows:
            for key, value in row.items():
                number = _numeric(value)
                if key not in ("step", "ts") and number is not None:
                    writer.add_scalar(key, number, global_step=row["step"], walltime=row["ts"])
        for step in store.sample_steps():
            writer.add_text("samples", _samples_markdown(store.samples(step)), global_step=step,
                            walltime=step_time.get(step))
        for event in store.events():
            if event["kind"] == "knob":
                writer.add_text("knob_changes", _knob_change_text(event), global_step=event["step"],
                                walltime=event["ts"])
        writer.add_text("config", "```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```",
                        global_step=0, walltime=meta.get("created"))
        # the HParams tab: this run's knobs beside its last reward and KL (written into the run's own
        # folder, not add_hparams' extra sub-run, so the scalars above are the metrics it shows)
        final = {k: _numeric(v) for k, v in (rows[-1] if rows else {}).items() if k in ("reward", "kl")}
        metric_tags = {k: v for k, v in final.items() if v is not None}  # a NaN reward is left out, not zeroed
        for summary in hparams({k: _hparam(v) for k, v in config.items() if v is not None}, metric_tags):
            writer.file_writer.add_summary(summary)
    finally:
        writer.close()
    return target


def to_trackio(run_dir: str, project: str) -> str:
    """Log a run into a local trackio project (its default folder, or $TRACKIO_DIR); returns the
    trackio run's name. A run already in that project is refused rather than logged twice."""
    try:
        import trackio
    except ImportError:
        raise ExportError("--trackio needs trackio, an optional install: pip install trackio") from None

    store = RunStore(run_dir)
    meta = store.meta()
    rows = store.metrics_since(-1)
    run_id = os.path.basename(os.path.normpath(run_dir))
    try:
        existing = {r.name for r in trackio.Api().runs(project)}
    except ValueError:  # trackio's answer for a project that does not exist yet
        existing = set()
    if run_id in existing:
        raise ExportError(f"{run_id} is already in trackio project {project!r}; delete it there or use "
                          "another project")
    start = meta.get("created") or (rows[0]["ts"] if rows else 0.0)
    trackio.init(project=project, name=run_id, group=meta.get("sweep"), config=meta.get("config") or {},
                 embed=False, auto_log_cpu=False, auto_log_gpu=False)
    try:
        for row in rows:
            metrics = {k: _numeric(v) for k, v in row.items() if k not in ("step", "ts")}
            metrics = {k: v for k, v in metrics.items() if v is not None}
            # trackio stamps each point with the time it is logged; the step's own time rides along
            metrics["time/elapsed_s"] = row["ts"] - start
            trackio.log(metrics, step=row["step"])
    finally:
        trackio.finish()
    return run_id
