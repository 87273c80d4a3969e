"""Playground: pick knobs, start a real TRL run, watch it live, change beta/epsilon mid-run."""

import streamlit as st

from rlhf_core import health, plots, runs, zoo
from rlhf_core.config import ConfigError, RunConfig
from rlhf_core.rewards import RewardError
from rlhf_core.store import FINAL_STATUSES, LIVE_STATUSES, RunStore, StoreError
from ui.common import fmt_duration, guarded, listed_runs, progress_line, run_data, selected_run_id
from ui import visitor
from ui.knobs import (CLIP_CHOICES, KL_CHOICES, init_from_url, knob_panel, lesson_from_url, lesson_link_builder,
                      lesson_note, preset_picker, sync_url)

# twice a second: with the chart's data replaced in place a refresh is cheap for the browser, and a
# step shows about half a second after the worker stores it (bench --browser)
REFRESH_S = 0.5
# a queued run only moves up the queue: a slower refresh leaves the CPU to the run that trains
# (on a hosted server many visitors' pages wait at once)
QUEUED_REFRESH_S = 2.0
WATCHING = "playground_run"  # session state: the run the Playground showed last


def start_run(values: dict, messages) -> None:
    """Validate, preflight and submit; problems are shown in `messages`, right under Start."""
    if visitor.unknown_yet():
        messages.warning("This browser has not been recognised yet; press Start again in a moment.")
        return
    try:
        cfg = RunConfig.parse(values)
        runs.preflight(cfg)
        run_id = runs.submit(cfg, owner=visitor.tag())
    except (ConfigError, RewardError, zoo.ZooError, runs.RunError, StoreError) as e:
        messages.error(f"Cannot start: {e}")
        return
    except OSError as e:
        messages.error(f"Cannot start: the runs folder is not usable ({e.strerror or e}).")
        return
    st.query_params["run"] = run_id
    st.session_state["follow_samples"] = True
    st.rerun()


@st.fragment
def live_controls(run_id: str, info: runs.RunInfo, hidden: frozenset[str] = frozenset()) -> None:
    """Apply beta/epsilon mid-run, and Stop. Changes land at the next step and become events.
    A fragment: a click here reruns these controls only, not the page and its chart. On a hosted
    server only the visitor who started the run sees them. A lesson link that hides kl_coef or
    clip_range hides its live slider too."""
    if visitor.unknown_yet():
        st.caption("Recognising this browser…")
        return
    if not runs.may_control(info, visitor.tag()):
        st.caption("You are watching a run another visitor started: only they can stop or retune it.")
        return
    last = info.last or {}
    cfg = info.config or {}
    cur_kl = last.get("kl_coef", cfg.get("kl_coef", 0.05))
    cur_clip = last.get("clip_range") or cfg.get("clip_range", 0.2)
    dpo = cfg.get("algorithm") == "dpo"
    with st.container(border=True):
        live = [k for k in ("kl_coef", "clip_range") if k not in hidden and not (dpo and k == "clip_range")]
        st.markdown("**Live knobs** — applied at the next step" if live else "**This run**")
        c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
        changes = {}
        if "kl_coef" in live:
            changes["kl_coef"] = c1.select_slider("β (kl_coef)", KL_CHOICES,
                                                  value=min(KL_CHOICES, key=lambda v: abs(v - cur_kl)),
                                                  key=f"live_kl_{run_id}")
        if dpo:  # DPOTrainer reads β at every step; it has no clip range
            c2.caption("DPO reads β at every step, in its loss. It has no clip range.")
        elif "clip_range" in live:
            changes["clip_range"] = c2.select_slider("ε (clip_range)", CLIP_CHOICES,
                                                     value=min(CLIP_CHOICES, key=lambda v: abs(v - cur_clip)),
                                                     key=f"live_clip_{run_id}")
        if changes and c3.button("Apply", key=f"apply_{run_id}", type="primary"):
            try:
                runs.set_knobs(run_id, owner=visitor.tag(), **changes)
                st.toast(", ".join(f"{plots.KNOB_SYMBOL[k]} → {v:g}" for k, v in changes.items()) + " at the next step")
            except (ValueError, OSError, StoreError) as e:
                st.error(f"Could not apply: {e}")
        if c4.button("Stop", key=f"stop_{run_id}"):
            try:
                runs.stop(run_id, owner=visitor.tag())
                st.toast("Stopping…")
            except (runs.RunError, StoreError, OSError) as e:
                st.error(f"Could not stop: {e}")


def samples_view(run_id: str) -> None:
    store = RunStore(runs.run_dir(run_id))
    steps = store.sample_steps()
    if not steps:
        st.caption("Samples appear after the first step.")
        return
    follow = st.toggle("Follow the latest step", key="follow_samples", value=True)
    step = steps[-1]
    if not follow and len(steps) > 1:
        step = st.select_slider("Step", steps, value=steps[-1], key=f"sample_step_{run_id}")
    samples = store.samples(step)
    st.caption(f"Samples from step {step}: the prompt (bold) and its completion, with reward and KL "
               "(log π/π_ref summed over the completion).")
    st.html(plots.samples_html(samples))
    with_tokens = [s for s in samples if s.get("tokens")]
    if with_tokens:
        by_idx = {s["idx"]: s for s in with_tokens}
        idx = st.selectbox("Per-token log-ratio against the reference model", list(by_idx),
                           format_func=lambda i: f"#{i}: {(by_idx[i]['prompt'] + by_idx[i]['completion'])[:70]}…",
                           key=f"heat_{run_id}")
        chosen = by_idx[idx]
        st.html(plots.logratio_html(chosen["tokens"], chosen["logratios"], prompt=chosen["prompt"]))
        st.caption("Red: the policy now likes this token more than the reference model did; blue: less. "
                   "Hover a token for its log-ratio. The sum over tokens is the sample's KL.")


def queue_text(run_id: str) -> str:
    """' · 2nd in line · starts in about 0:40' for a queued run."""
    place = runs.queue_place(run_id, listed=listed_runs(runs.runs_root()))
    if place is None:
        return ""
    n, eta = place
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")
    return f" · {n}{suffix} in line" + (f" · starts in about {fmt_duration(eta)}" if eta is not None else "")


def queued_panel(run_id: str) -> None:
    """A queued run's place in line, and nothing else to draw or read until it starts: while a
    class waits, its pages leave the CPU to the run that trains. Redraws the page when it starts."""
    try:
        info = runs.info(run_id, with_last=False)
    except (runs.RunError, StoreError) as e:
        st.error(f"This run can no longer be read: {e}")
        return
    if info.status != "queued":
        st.rerun()
    frac, text = progress_line(info, [])
    st.progress(frac, text=text + queue_text(run_id))
    st.caption("Its live charts and samples appear here when it starts.")


def run_panel(run_id: str) -> None:
    """Status, alarms, charts and samples; refreshed every REFRESH_S while the run is live."""
    try:
        info = runs.info(run_id)
        data = run_data(run_id)
    except (runs.RunError, StoreError) as e:
        st.error(f"This run can no longer be read: {e}")
        return
    frac, text = progress_line(info, data.rows)
    st.progress(frac, text=text)
    if info.error:
        (st.error if info.status in ("failed", "crashed", "diverged") else st.info)(info.error)
    latest = RunStore(runs.run_dir(run_id)).samples() if data.rows else []
    for alarm in health.check(data.rows, latest, info.status):
        box = st.error if alarm.severity == "error" else st.warning
        box(f"**{alarm.title}.** {alarm.explanation} *Try:* {alarm.try_this}")
    rows, events = data.rows, data.events
    frozen_key = f"_frozen_{run_id}"
    if st.session_state.get("pause_live") and info.status in LIVE_STATUSES:
        # unchanged data are not sent again: the chart holds still while the run goes on
        rows, events = st.session_state.setdefault(frozen_key, (list(rows), list(events)))
        st.caption(f"Paused at step {rows[-1]['step'] if rows else 0}: zoom and pan freely; "
                   "untick 'Pause live' to catch up.")
    else:
        st.session_state.pop(frozen_key, None)
    # drawn empty while the worker starts, so that the first step only adds data to a chart that
    # the browser has already built
    algorithm = (info.config or {}).get("algorithm")
    st.vega_lite_chart(plots.live_spec(rows, events, f"Live charts of run {run_id}", algorithm=algorithm),
                       key=f"live_chart_{run_id}")
    if not rows:
        st.caption("Waiting for the first step…")
    st.divider()
    pairs = RunStore(runs.run_dir(run_id)).meta().get("dpo_pairs") if algorithm == "dpo" else None
    if pairs:
        with st.expander(f"The offline data: {pairs['count']} preference pairs, made once at the start "
                         f"({pairs['source']})"):
            st.html(plots.pairs_html(pairs["examples"]))
            if pairs.get("ties_dropped"):
                st.caption(f"{pairs['ties_dropped']} sampled pairs were dropped as ties: the reward scored "
                           "both answers alike, so they say nothing about which is better.")
    samples_view(run_id)
    was_live = st.session_state.get(f"_was_live_{run_id}")
    now_live = info.status in LIVE_STATUSES or info.status == "queued"
    st.session_state[f"_was_live_{run_id}"] = now_live
    if was_live and not now_live:
        st.rerun()  # leave live mode: redraw the whole page once, without the timer


def restore_watched_run() -> str | None:
    """Coming back to the Playground from another page (the sidebar's link carries no ?run=), put
    the run this tab was watching back in the address, so that a peek at Runs & Compare does not
    lose a live run's charts and controls. Returns the id it put back, or None."""
    run_id = st.session_state.get(WATCHING)
    if run_id is None or st.query_params.get("run"):
        return None
    st.query_params["run"] = run_id
    return run_id


def landing_view() -> None:
    """Before Start: the most recent run that has steps (with a link to open it), else the empty
    panels that a run will fill, so the first screen shows what the Playground does."""
    st.info("Pick a preset and press **Start**: a real TRL run begins in a background worker, "
            "and reward, KL and samples appear here within seconds.")
    try:
        # on a hosted server, this visitor's own most recent run
        recent = next((r for r in listed_runs(runs.runs_root()) if r.steps_done and (visitor.tag() is None or
                                                                          r.owner == visitor.tag())), None)
        # the listing is shared for a second: a run deleted within it is gone by now
        data = run_data(recent.id) if recent else None
    except (runs.RunError, StoreError, OSError):
        recent = None
    if recent is None:
        st.vega_lite_chart(plots.live_spec([], description="Empty live charts"), key="landing_preview")
        st.caption("The six panels a run fills, step by step. Then its samples appear below them.")
        return
    cfg = recent.config or {}
    c1, c2 = st.columns([4, 1])
    c1.markdown(f"Your most recent run, `{recent.id}` ({recent.status}, {recent.steps_done}/"
                f"{recent.steps_total} steps, {cfg.get('algorithm', '?').upper()}, β {cfg.get('kl_coef')}):")
    if c2.button("Open it", key="open_recent"):
        st.query_params["run"] = recent.id
        st.rerun()
    st.vega_lite_chart(plots.live_spec(data.rows, data.events, f"Charts of the most recent run, {recent.id}",
                                       algorithm=cfg.get("algorithm")), key="landing_recent")


@guarded
def page() -> None:
    st.title("Playground")
    hidden, note, lesson_warnings = lesson_from_url()
    for w in init_from_url() + lesson_warnings:
        st.warning(w)
    left, right = st.columns([1, 2.6], gap="large")
    with left:
        preset_picker(hidden)
        if note:  # a teacher's lesson link: its sentence sits right above Start
            lesson_note(note)
        # Start sits right under the preset, on the first screen; the knobs below it are read
        # from their widget state, which is current when the click reruns the page
        start = st.button("Start", type="primary", width="stretch", key="start")
        messages = st.container()
        values = knob_panel(hidden)
        sync_url(values)
        lesson_link_builder(values, hidden)
        if start:
            start_run(values, messages)
    with right:
        restored = restore_watched_run()
        run_id, problem = selected_run_id()
        if problem and restored:  # the run it was watching has been deleted meanwhile
            st.session_state.pop(WATCHING, None)
            del st.query_params["run"]
            run_id, problem = None, None
        if problem:
            st.error(problem)
            return
        if run_id is None:
            landing_view()
            return
        st.session_state[WATCHING] = run_id
        try:
            info = runs.info(run_id, with_last=True)
        except (runs.RunError, StoreError) as e:
            st.error(f"This run can no longer be read: {e}")
            return
        cfg = info.config or {}
        st.subheader(f"Run {run_id}")
        if cfg.get("algorithm") == "dpo":
            st.caption(f"DPO (offline) · policy {cfg.get('policy')} · {cfg.get('pairs')} pairs from "
                       f"{cfg.get('pair_source')} · reward {cfg.get('reward')} (of fresh samples every "
                       f"{cfg.get('sample_every')} step(s)) · β {cfg.get('kl_coef')}")
        else:
            st.caption(f"{cfg.get('algorithm', '?').upper()} · policy {cfg.get('policy')} · reward "
                       f"{cfg.get('reward')} · β {cfg.get('kl_coef')} · ε {cfg.get('clip_range')} · "
                       f"update epochs {cfg.get('update_epochs')}"
                       + (f" · loss {cfg.get('loss_type', 'dapo')}, rewards scaled by {cfg.get('scale_rewards', 'group')}"
                          if cfg.get("algorithm") == "grpo" else ""))
        live = info.status in LIVE_STATUSES or info.status == "queued"
        if live:
            live_controls(run_id, info, hidden)
            st.toggle("Pause live", key="pause_live", help="Freeze the charts so you can zoom and pan.")
            if info.status == "queued":
                st.fragment(run_every=QUEUED_REFRESH_S)(queued_panel)(run_id)
            else:
                st.fragment(run_every=REFRESH_S)(run_panel)(run_id)
        else:
            run_panel(run_id)
        if info.status in FINAL_STATUSES:
            st.caption("This run has ended; it stays here with all its data. Compare it with others in "
                       "Runs & Compare.")


page()
