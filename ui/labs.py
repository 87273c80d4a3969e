"""One layout for every lab: the claim, the formula, settings, a run with progress, cached results,
the figures with least-squares fits of the published forms, and what to look for. Lab logic lives in rlhf_core.labs."""

from __future__ import annotations

import json
import math
from typing import Callable

import streamlit as st

from rlhf_core import hosting, runs
from rlhf_core.config import ConfigError
from rlhf_core.labs import (
    evidence_settings,
    per_seed_results,
    settings,
    stored_result,
    verdict,
)
from rlhf_core.labs.support import jobs
from ui import visitor


def _parse_list(raw: str, item_type: type, name: str) -> list:
    items = [x.strip() for x in raw.replace(";", ",").split(",") if x.strip()]
    try:
        return [item_type(x) for x in items]
    except ValueError:
        raise ConfigError(f"{name}: expected a comma-separated list of {item_type.__name__}s, got '{raw}'") from None


def _widget(name: str, spec: dict, key: str):
    label = spec["name"].replace("_", " ")
    default, lo, hi, help_ = spec["default"], spec.get("lo"), spec.get("hi"), spec.get("help")
    if spec.get("choices"):
        choices = spec["choices"]
        return st.selectbox(label, choices, index=choices.index(default), help=help_, key=key)
    if isinstance(default, bool):
        return st.checkbox(label, value=default, help=help_, key=key)
    if isinstance(default, list):
        item_type = type(default[0]) if default else float
        raw = st.text_input(label, value=", ".join(str(x) for x in default), help=help_, key=key)
        return _parse_list(raw, item_type, spec["name"])
    if isinstance(default, int):
        if lo is not None and hi is not None and hi - lo <= 200:
            return st.slider(label, int(lo), int(hi), int(default), help=help_, key=key)
        return int(st.number_input(label, value=int(default), min_value=lo, max_value=hi, step=1,
                                   help=help_, key=key))
    if isinstance(default, float):
        if lo is not None and hi is not None and hi <= 10 and default >= 0.01:
            return st.slider(label, float(lo), float(hi), float(default), help=help_, key=key)
        # a step on the default's own scale: 3e-3 moves by 1e-3, not by Streamlit's 0.01
        step = 10.0 ** math.floor(math.log10(abs(default))) if default else 0.01
        return float(st.number_input(label, value=float(default), min_value=float(lo) if lo is not None else None,
                                     max_value=float(hi) if hi is not None else None, step=step, format="%g",
                                     help=help_, key=key))
    return st.text_input(label, value=str(default), help=help_, key=key)


def settings_form(name: str, start: dict | None = None) -> dict | None:
    """Widgets for the lab's settings, starting from the defaults updated by `start` (the evidence
    settings); returns the overrides (only values that differ from the defaults, so the default run
    shares its cache key with the CLI's) or None on bad input."""
    specs = settings(name)
    defaults = {s["name"]: s["default"] for s in specs}
    specs = [{**s, "default": (start or {}).get(s["name"], s["default"])} for s in specs]
    tag = "evidence-" if start else ""  # the widgets start again from the other settings when switched
    values, error = {}, None
    main = [s for s in specs if not s.get("advanced")]
    advanced = [s for s in specs if s.get("advanced")]
    cols = st.columns(min(3, max(1, len(main))))
    for i, spec in enumerate(main):
        with cols[i % len(cols)]:
            try:
                values[spec["name"]] = _widget(name, spec, f"lab-{name}-{tag}{spec['name']}")
            except ConfigError as e:
                error = str(e)
    with st.expander("More settings"):
        for spec in advanced:
            try:
                values[spec["name"]] = _widget(name, spec, f"lab-{name}-{tag}{spec['name']}")
            except ConfigError as e:
                error = str(e)
    if error:
        st.error(error)
        return None
    return {k: v for k, v in values.items() if v != defaults[k]}


def lab_section(name: str, *, claim: str, formula: str, look_for: str, differs: str,
                draw: Callable[[dict], None]) -> None:
    """The whole lab: text, settings, run/progress, cached result, figures and verdict."""
    st.markdown(claim)
    st.latex(formula)
    heavier = evidence_settings(name)
    use_evidence = bool(heavier) and st.toggle(
        "Evidence settings", key=f"evidence-{name}",
        help="On: the registered design at full size, as in the stored 5-seed result (over a minute per seed "
             "on 2 cores). Off: the interactive defaults, every kind of arm and every check on fewer labels, "
             "steps or prompts (within a minute per seed on 2 cores).")
    overrides = settings_form(name, heavier if use_evidence else None)
    if overrides is None:
        return
    root = runs.ensure_root()
    cols = st.columns([1, 1, 4])
    seeds = cols[1].selectbox("Seeds", [1, 3, 5], key=f"seeds-{name}",
                              help="Run the lab on this many seeds (in two processes): the verdict says on how "
                                   "many of them the published shape held. The charts show the first seed.")
    try:
        job = jobs.status(root, name, overrides, seeds)
    except ConfigError as e:
        st.error(str(e))
        return
    if job.state == "running":
        mine = hosting.may_act(job.owner, visitor.tag())
        if mine and cols[0].button("Cancel", key=f"cancel-{name}"):
            try:
                jobs.cancel(root, name, overrides, seeds, owner=visitor.tag())
            except (ConfigError, OSError) as e:
                st.error(f"Could not cancel the lab: {e}")
                return
            st.rerun()
        if not mine:
            cols[0].caption("Another visitor is running this lab with these settings; its result will show here.")
    elif cols[0].button("Run lab" if job.state != "done" else "Re-run", key=f"run-{name}", type="primary"):
        try:
            if job.state == "done":
                jobs.forget(root, name, overrides, seeds)
            jobs.start(root, name, overrides, seeds, owner=visitor.tag())
        except (ConfigError, OSError) as e:
            st.error(f"Could not start the lab: {e}")
            return
        st.rerun()
    as_evidence = bool(heavier) and overrides == heavier
    cols[2].caption(f"`python -m rlhf_core lab {name} --json`" + (" `--evidence`" if as_evidence else "")
                    + (f" `--seeds {seeds}`" if seeds > 1 else "")
                    + "".join(f" `--set {k}={json.dumps(v)}`" for k, v in ({} if as_evidence else overrides).items()))
    try:  # a class sees the committed evidence at once instead of waiting for a run
        stored = stored_result(name) if job.state == "none" and overrides in ({}, heavier) else None
    except ConfigError as e:
        st.error(str(e))
        stored = None
    _show_job(job, name, overrides, seeds, draw, look_for, differs, stored)


@st.fragment(run_every=1.0)
def _poll(name: str, overrides: dict, seeds: int) -> None:
    job = jobs.status(runs.runs_root(), name, overrides, seeds)
    if job.state == "running":
        st.progress(job.fraction, text=f"{job.message} ({job.fraction:.0%})")
    else:
        st.rerun()


def judge_agreement() -> None:
    """How far the proxy (learned-rm) stands in for the gold judge on held-out pairs (from zoo.json)."""
    from rlhf_core import zoo

    info = zoo.asset_info("learned-rm").get("agreement_with_gold")
    gold = zoo.asset_info("gold-rm")
    if not info:
        st.caption("The embedded reward models carry no agreement figure (rebuild them with `python -m rlhf_core.zoo build`).")
        return
    st.caption(f"**The judge is independent of the proxy.** `gold-rm` learnt from {gold.get('reviews', 'its own reviews')}, "
               f"initialised from `{gold.get('initialised_from', '?')}`, seed {gold.get('seed', '?')}; `learned-rm` and every "
               f"proxy trained here never saw those reviews. On {info['pairs']} held-out pairs the two prefer the same "
               f"ending {info['same_preference']:.0%} of the time; their scores correlate at {info['score_correlation']:.2f}.")


def side_by_side(left, right) -> None:
    """Two plotly figures in two columns."""
    c1, c2 = st.columns(2)
    c1.plotly_chart(left, width="stretch")
    c2.plotly_chart(right, width="stretch")


def show_verdict(name: str, result: dict) -> None:
    """The three verdict states, recomputed from the raw series: green only for `reproduced`."""
    v = verdict(name, result)
    runtime = f" (ran in {result.get('runtime_s')} s)"
    if v["state"] == "reproduced":
        st.success(f"Published shape **reproduced on {v['k']} of {v['n']} seed{'s' if v['n'] > 1 else ''}**{runtime}.")
    elif v["state"] == "not reproduced":
        st.warning(f"Published shape **not reproduced**: it held on {v['k']} of {v['n']} "
                   f"seed{'s' if v['n'] > 1 else ''}{runtime}.")
    else:
        st.info(f"**Illustration**, not a test: {v['summary'].split(': ', 1)[-1]}{runtime}")
    if v["per_seed"] and (v["n"] > 1 or v["state"] != "reproduced"):
        for p in v["per_seed"]:
            st.caption(f"seed {p['seed']}: " + ("every check held" if not p["problems"] else "; ".join(p["problems"])))


def stored_caption(stored: dict) -> str:
    """Where a stored result comes from: seeds, command, commit and machine."""
    e, n = stored["evidence"], len(per_seed_results(stored["result"]))
    machine = e["machine"]
    cpu = machine.get("cpu_model") or machine.get("cpu") or "?"
    return (f"**Stored result** of the evidence settings on {n} seed{'s' if n != 1 else ''}, measured by "
            f"`{e['command']}` at commit `{e['git']['commit'][:10]}` on {cpu} ({machine.get('cores', '?')} cores), "
            f"{e['measured_at'][:10]}. **Run lab** runs it here, with your settings.")


def _show_job(job: jobs.LabJob, name: str, overrides: dict, seeds: int, draw, look_for: str, differs: str,
              stored: dict | None = None) -> None:
    if job.state == "running":
        _poll(name, overrides, seeds)
        return
    if job.state == "failed":
        st.error(f"The last run of this lab with these settings failed: {job.error}")
    if stored and stored["stale"]:
        st.info(f"The stored result (commit `{stored['evidence']['git']['commit'][:10]}`) was measured with other "
                "settings than today's evidence settings, so it is not shown. Press **Run lab**.")
    if job.state == "done":
        result = job.result
    elif stored and not stored["stale"]:
        st.caption(stored_caption(stored))
        if evidence_settings(name) and not overrides:
            st.caption("The settings above are the lighter interactive defaults; switch on **Evidence settings** "
                       "to see the ones this result was measured at.")
        result = stored["result"]
    else:
        st.info("No result for these settings yet. Press **Run lab** (docs/lab-timings.json says how long each "
                "lab takes at its defaults).")
        st.markdown("**What to look for.** " + look_for)
        return
    show_verdict(name, result)
    draw(per_seed_results(result)[0])
    st.markdown("**What to look for.** " + look_for)
    st.markdown("**Where this toy differs from a real LLM.** " + differs)
    st.download_button("Download the raw JSON", json.dumps(result, indent=1), file_name=f"{name}.json",
                       mime="application/json", key=f"dl-{name}")
