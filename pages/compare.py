"""Runs & Compare: every run in a table, overlays of any metric, the reward-KL frontier, per-run
exports and deletion, and sweeps (one knob, several values, queued under the concurrency cap)."""

import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import streamlit as st
import yaml

from rlhf_core import hosting, plots, runs
from rlhf_core.config import ConfigError, RunConfig
from rlhf_core.presets import list_presets, list_sweeps
from rlhf_core.store import LIVE_STATUSES, RunStore, StoreError, write_csv
from ui import visitor
from ui.common import fmt_duration, forget_run, guarded, run_data

METRICS = ["reward", "kl", "objective", "entropy", "clip_fraction", "response_length", "approx_kl",
           "policy_loss", "value_loss", "preference_margin", "preference_accuracy", "kl_coef", "clip_range",
           "step_time"]
SWEEP_KNOBS = ["kl_coef", "clip_range", "learning_rate", "update_epochs", "temperature", "response_length",
               "generations_per_prompt", "seed", "loss_type", "scale_rewards"]


def runs_table(all_runs: list[runs.RunInfo]) -> None:
    rows = []
    for r in all_runs:
        cfg = r.config or {}
        rows.append({"run": r.id, "status": r.status, "algorithm": cfg.get("algorithm"),
                     "β": cfg.get("kl_coef"), "ε": None if cfg.get("algorithm") == "dpo" else cfg.get("clip_range"),
                     "steps": f"{r.steps_done}/{r.steps_total}",
                     "final reward": r.last.get("reward"), "KL": r.last.get("kl"),
                     "duration": fmt_duration(r.duration), "error": r.error or "",
                     **({"yours": "yes" if r.owner == visitor.tag() else ""} if hosting.hosted() else {})})
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"final reward": st.column_config.NumberColumn(format="%.3f"),
                                "KL": st.column_config.NumberColumn(format="%.3f")})


def config_diff(selected: list[runs.RunInfo]) -> None:
    keys = sorted({k for r in selected for k in (r.config or {})})
    differing = [k for k in keys if len({repr((r.config or {}).get(k)) for r in selected}) > 1]
    if not differing:
        st.caption("The selected runs share every knob.")
        return
    st.dataframe([{"knob": k, **{r.id: (r.config or {}).get(k) for r in selected}} for k in differing],
                 hide_index=True, width="stretch")


def charts(selected_ids: list[str]) -> None:
    data = {}
    for run_id in selected_ids:
        try:
            data[run_id] = run_data(run_id).rows
        except (runs.RunError, StoreError) as e:
            st.warning(f"{run_id}: {e}")
    if not data:
        return
    metric = st.selectbox("Metric", METRICS, key="compare_metric")
    st.plotly_chart(plots.overlay_figure(data, metric), key="overlay_chart", config={"displaylogo": False})
    st.markdown("**Reward vs KL: the β frontier.** Each run traces where its β lets it settle: a loose "
                "leash buys reward with KL, a tight one stays near the reference model.")
    st.plotly_chart(plots.frontier_figure(data), key="frontier_chart", config={"displaylogo": False})


def run_actions(selected: list[runs.RunInfo]) -> None:
    labels = {r.id: r for r in selected}
    run_id = st.selectbox("Run", list(labels), key="action_run")
    r = labels[run_id]
    cfg_yaml = yaml.safe_dump(r.config or {}, sort_keys=False)
    c1, c2, c3 = st.columns(3)
    try:
        csv_text = _csv(run_id)
        c1.download_button("Metrics CSV", csv_text, file_name=f"{run_id}.csv", mime="text/csv",
                           key=f"csv_{run_id}")
    except (runs.RunError, StoreError) as e:
        c1.warning(str(e))
    c2.download_button("Config YAML", cfg_yaml, file_name=f"{run_id}.yaml", mime="text/yaml",
                       key=f"yaml_{run_id}")
    tensorboard_download(c2, run_id)
    if not runs.may_control(r, visitor.tag()):
        c3.caption("Another visitor started this run: only they can delete it.")
    else:
        delete_button(c3, run_id)
    st.markdown("Reproduce it from the command line (save the YAML as `config.yaml`):")
    st.code(runs.cli_command(), language="bash")
    st.markdown("On several GPUs:")
    st.code(runs.accelerate_command(), language="bash")


def delete_button(column, run_id: str) -> None:
    confirm = column.checkbox("Confirm delete", key=f"confirm_{run_id}")
    if column.button("Delete run", key=f"delete_{run_id}", disabled=not confirm):
        try:
            runs.delete(run_id, owner=visitor.tag())
            forget_run(run_id)
            st.session_state["compare_selection"] = [x for x in st.session_state.get("compare_selection", [])
                                                     if x != run_id]
            st.toast(f"Deleted {run_id}")
            st.rerun()
        except (runs.RunError, OSError) as e:
            st.error(f"Could not delete: {e}")


def _csv(run_id: str) -> str:
    buf = io.StringIO()
    write_csv(RunStore(runs.run_dir(run_id)).metrics_since(-1), buf)  # every step, not the thinned cache
    return buf.getvalue()


def tensorboard_download(column, run_id: str) -> None:
    """Two clicks: make the event files (in a CLI subprocess, so the server never imports torch),
    then download them zipped. The export is the CLI's own: `export RUN --tensorboard DIR`."""
    key = f"_tensorboard_zip_{run_id}"
    if column.button("TensorBoard events", key=f"tb_make_{run_id}",
                     help="Metrics, knob changes, samples and the config as TensorBoard event files; unzip, "
                          "then tensorboard --logdir <the folder>. The CLI also exports to trackio."):
        with tempfile.TemporaryDirectory() as out, st.spinner("Writing event files…"):
            done = subprocess.run([sys.executable, "-m", "rlhf_core", "export", runs.run_dir(run_id),
                                   "--tensorboard", out], capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines()
                column.error(f"Could not export: {lines[-1] if lines else 'exit code ' + str(done.returncode)}")
                return
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for folder, _, files in os.walk(out):
                    for name in files:
                        z.write(os.path.join(folder, name), arcname=os.path.relpath(os.path.join(folder, name), out))
            st.session_state[key] = buf.getvalue()
    if key in st.session_state:
        column.download_button("Download the zip", st.session_state[key], file_name=f"{run_id}-tensorboard.zip",
                               mime="application/zip", key=f"tb_{run_id}")


def parse_values(knob: str, text: str) -> list:
    field = RunConfig.model_fields[knob]
    out = []
    for part in [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]:
        if field.annotation not in (int, float):  # a choice such as loss_type: RunConfig checks the name
            out.append(part)
            continue
        try:
            out.append(int(part) if field.annotation is int else float(part))
        except ValueError:
            raise ConfigError(f"{knob}: '{part}' is not a number") from None
    if not out:
        raise ConfigError(f"{knob}: give at least one value, e.g. 0, 0.02, 0.1, 0.5")
    if len(out) > 16:
        raise ConfigError(f"{knob}: at most 16 values per sweep, got {len(out)}")
    return out


def queue_sweep(configs: list[RunConfig], what: str, name: str) -> None:
    """Preflight and queue every run of a sweep (on a hosted server: all of them, or none); the
    runs share a sweep label (`name` and the time), which exports keep."""
    try:
        runs.check_quota(visitor.tag(), len(configs))
        for cfg in configs:
            runs.preflight(cfg)
        ids = []
        group = runs.new_sweep_id(name)
        for cfg in configs:
            ids.append(runs.submit(cfg, owner=visitor.tag(), sweep=group))
            time.sleep(0.01)  # distinct creation times keep the queue in order
    except (ConfigError, runs.RunError, StoreError, OSError, ValueError) as e:
        st.error(f"Cannot queue the sweep: {e}")
        return
    st.session_state["compare_selection"] = ids
    st.success(f"Queued {len(ids)} runs ({what}); they start as slots free up "
               f"(concurrency cap {runs.default_cap()}).")


def ready_made_sweeps() -> None:
    try:
        sweeps = {s.name: s for s in list_sweeps()}
    except ConfigError as e:
        st.error(f"A ready-made sweep file is broken: {e}")
        return
    if not sweeps:
        return
    with st.expander("Ready-made sweeps", expanded=False):
        name = st.selectbox("Sweep", list(sweeps), format_func=lambda n: sweeps[n].title, key="ready_sweep")
        chosen = sweeps[name]
        st.caption(chosen.description)
        dumps = [c.model_dump() for c in chosen.configs]
        shown = ["algorithm"] + [k for k in dumps[0] if k != "algorithm" and len({repr(d[k]) for d in dumps}) > 1]
        st.dataframe([{"run": i + 1, **{k: d[k] for k in shown}, "steps": d["steps"]} for i, d in enumerate(dumps)],
                     hide_index=True)
        if st.button("Queue these runs", key="ready_sweep_go", type="primary"):
            queue_sweep(list(chosen.configs), chosen.title, chosen.name)


def sweep_form() -> None:
    with st.expander("New sweep: one knob, several values", expanded=False):
        presets = {p.name: p for p in list_presets() if not p.needs_internet}
        base_name = st.selectbox("Base preset", list(presets), format_func=lambda n: presets[n].title,
                                 key="sweep_preset")
        c1, c2, c3 = st.columns([2, 3, 1])
        knob = c1.selectbox("Knob", SWEEP_KNOBS, key="sweep_knob")
        text = c2.text_input("Values (comma separated)", "0, 0.02, 0.1, 0.5", key="sweep_values")
        steps = c3.number_input("Steps", 1, 100_000, value=presets[base_name].config.steps, key="sweep_steps")
        if st.button("Queue sweep", key="sweep_go", type="primary"):
            try:
                base = presets[base_name].config.with_overrides({"steps": int(steps)})
                configs = [base.with_overrides({knob: v}) for v in parse_values(knob, text)]
            except ConfigError as e:
                st.error(f"Cannot queue the sweep: {e}")
                return
            queue_sweep(configs, f"{knob} = {text}", f"{knob}-sweep")


def live_section(selected_ids: list[str]) -> None:
    all_runs = {r.id: r for r in runs.list_runs()}
    runs.schedule()  # start queued runs whose slot has freed up
    runs_table(list(all_runs.values()))
    selected = [all_runs[i] for i in selected_ids if i in all_runs]
    if selected:
        st.subheader("Compare")
        config_diff(selected)
        charts([r.id for r in selected])


@guarded
def page() -> None:
    st.title("Runs & Compare")
    sweep_form()
    ready_made_sweeps()
    try:
        all_runs = runs.list_runs()
    except (runs.RunError, OSError) as e:
        st.error(f"Cannot list runs: {e}")
        return
    if not all_runs:
        st.info("No runs yet. Start one in the Playground, or queue a sweep above.")
        return
    ids = [r.id for r in all_runs]
    current = [i for i in st.session_state.get("compare_selection", ids[:4]) if i in ids]
    st.session_state["compare_selection"] = current
    selected_ids = st.multiselect("Runs to compare", ids, key="compare_selection")
    any_live = any(r.status in LIVE_STATUSES or r.status == "queued" for r in all_runs)
    if any_live:
        st.fragment(run_every=2.0)(live_section)(selected_ids)
    else:
        live_section(selected_ids)
    selected = [r for r in all_runs if r.id in selected_ids]
    if selected:
        st.subheader("Export, reproduce, delete")
        run_actions(selected)


page()
