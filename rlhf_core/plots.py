"""Plotly figures for runs (usable from a notebook as well as from the app).

All figures downsample to at most MAX_POINTS per trace: the browser redraws the whole chart on
every update, and a few thousand points per trace keep that cheap.
"""

from __future__ import annotations

import functools
import html
import math

import altair as alt
import numpy as np
import plotly.graph_objects as go

MAX_POINTS = 3000
# the live panels are ~250 px wide: more points than pixels only cost the browser time
LIVE_MAX_POINTS = 500
LIVE_PANEL_SIZE = (190, 150)  # width, height in px: three panels fit beside the knobs and the open sidebar at 1366 px
LIVE_PANELS = (
    ("reward", "Reward (mean ± std)"),
    ("kl", "KL to reference (nats / completion)"),
    ("objective", "Objective = reward − β·KL"),
    ("entropy", "Entropy (nats / token)"),
    ("clip_fraction", "Clip fraction"),
    ("response_length", "Response length (tokens)"),
)
# DPO never samples to learn, so clipping and entropy of rollouts mean nothing there: its own
# curves (the loss and the implicit reward β·log π/π_ref of chosen over rejected answers) take their place
DPO_LIVE_PANELS = LIVE_PANELS[:3] + (
    ("policy_loss", "DPO loss (on the pairs)"),
    ("preference_margin", "Implicit reward margin, chosen − rejected"),
    ("preference_accuracy", "Preference accuracy (on the pairs)"),
)
KNOB_SYMBOL = {"kl_coef": "β", "clip_range": "ε"}


def live_panels(algorithm: str | None) -> tuple[tuple[str, str], ...]:
    return DPO_LIVE_PANELS if algorithm == "dpo" else LIVE_PANELS


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def downsample(rows: list[dict], max_points: int = MAX_POINTS) -> list[dict]:
    """Every k-th row (always keeping the last) so that at most max_points remain."""
    if len(rows) <= max_points:
        return rows
    stride = math.ceil(len(rows) / max_points)
    out = rows[::stride]
    if out[-1] is not rows[-1]:
        out.append(rows[-1])
    return out


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric as numpy arrays, skipping missing and non-finite values.
    Arrays rather than lists: plotly validates a list element by element, an array at once."""
    pairs = [(r["step"], v) for r in rows if (v := _num(r.get(key))) is not None]
    if not pairs:
        return np.empty(0), np.empty(0)
    arr = np.asarray(pairs, dtype=float)
    return arr[:, 0], arr[:, 1]


def live_spec(rows: list[dict], events: list[dict] | None = None, description: str = "Live training charts",
              max_points: int = LIVE_MAX_POINTS, algorithm: str | None = None) -> dict:
    """The Playground's six panels as one Vega-Lite spec: dashed markers where β or ε changed;
    hovering a panel marks the nearest step and shows its value; drag or scroll to pan and zoom.

    The data travel as two named datasets, "rows" and "events", beside a layout that never changes.
    While a run trains, each refresh sends the same layout with new data, and Streamlit's chart
    replaces the data in the view it already has instead of building a new one: in Chromium on 2
    cores that costs the page about a third of what the same panels cost as one Plotly figure with
    subplots (`python -m rlhf_core bench --browser` measures it). Display it with
    `st.vega_lite_chart(spec)`, or in a notebook with `altair.Chart.from_dict(spec)`. The
    `description` names what is shown (the browser tests read it to tell one run's chart from another's).
    A DPO run (`algorithm="dpo"`) shows its loss, margin and accuracy in the second row."""
    panels = live_panels(algorithm)
    keys = [k for k, _ in panels] + ["reward_std"]
    table = []
    for r in downsample(rows, max_points):
        row = {"step": r["step"], **{k: _num(r.get(k)) for k in keys}}
        if row["reward"] is not None and row["reward_std"] is not None:
            row["reward_lo"], row["reward_hi"] = row["reward"] - row["reward_std"], row["reward"] + row["reward_std"]
        table.append(row)
    marks = [{"step": ev["step"], "label": f"{KNOB_SYMBOL.get(ev.get('name'), ev.get('name'))}→{ev.get('to'):g}"}
             for ev in events or [] if ev.get("kind") == "knob"]
    return {**_live_layout(panels), "description": description, "datasets": {"rows": table, "events": marks}}


@functools.cache
def _live_layout(panels_shown: tuple[tuple[str, str], ...] = LIVE_PANELS) -> dict:
    """The six panels' layout, built and validated by Altair once per process: building it takes
    Altair most of a second on a small CPU, far longer than a live refresh may take."""
    rows_data, events_data = alt.NamedData("rows"), alt.NamedData("events")
    x = alt.X("step:Q", title="step", axis=alt.Axis(tickMinStep=1))
    panels = []
    for key, title in panels_shown:
        base = alt.Chart(rows_data).encode(x=x)
        y = alt.Y(f"{key}:Q", title=None, scale=alt.Scale(zero=False), axis=alt.Axis(format=".4~g"))
        hover = alt.selection_point(name=f"hover_{key}", nearest=True, on="pointerover", clear="pointerout",
                                    fields=["step"], empty=False)
        zoom = alt.selection_interval(name=f"zoom_{key}", bind="scales", encodings=["x"])
        layers = []
        if key == "reward":
            layers.append(base.mark_area(opacity=0.18).encode(y="reward_lo:Q", y2="reward_hi:Q"))
        layers += [
            base.mark_line(strokeWidth=2).encode(y=y),
            # invisible points pick the step under the pointer (a grey rule marks it) and carry
            # the pan and zoom; a fixed view name keeps the spec the same from one refresh to the next
            base.mark_point(opacity=0, size=80).encode(
                y=y, tooltip=[alt.Tooltip("step:Q"), alt.Tooltip(f"{key}:Q", format=".4~g")]
            ).add_params(hover, zoom).properties(name=f"points_{key}"),
            base.mark_rule(color="#999").transform_filter(hover),
            alt.Chart(events_data).mark_rule(color="#d62728", strokeDash=[4, 3]).encode(x="step:Q"),
        ]
        if key == "reward":
            layers.append(alt.Chart(events_data).mark_text(align="left", dx=3, color="#d62728", fontSize=11)
                          .encode(x="step:Q", y=alt.value(6), text="label:N"))
        panels.append(alt.layer(*layers).properties(title=title, width=LIVE_PANEL_SIZE[0], height=LIVE_PANEL_SIZE[1]))
    chart = (alt.vconcat(alt.hconcat(*panels[:3]), alt.hconcat(*panels[3:]))
             .configure_title(fontSize=13, anchor="start").configure_view(stroke=None))
    return chart.to_dict()


def overlay_figure(runs: dict[str, list[dict]], metric: str, height: int = 380) -> go.Figure:
    fig = go.Figure()
    for label, rows in runs.items():
        xs, ys = series(downsample(rows), metric)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label))
    fig.update_layout(height=height, xaxis_title="step", yaxis_title=metric, uirevision="overlay",
                      margin={"l": 40, "r": 10, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def smooth(values, window: int = 5) -> np.ndarray:
    """Trailing moving average (the first points average what is there)."""
    values = np.asarray(values, dtype=float)
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - window)
    return (csum[idx] - csum[start]) / (idx - start)


def frontier_figure(runs: dict[str, list[dict]], height: int = 420) -> go.Figure:
    """Reward against KL along each run (smoothed): where each beta settles on the trade-off."""
    fig = go.Figure()
    for label, rows in runs.items():
        pts = [(r["step"], _num(r.get("kl")), _num(r.get("reward"))) for r in downsample(rows)]
        pts = np.asarray([p for p in pts if p[1] is not None and p[2] is not None], dtype=float)
        if not len(pts):
            continue
        kl, rw = smooth(pts[:, 1]), smooth(pts[:, 2])
        fig.add_trace(go.Scatter(x=kl, y=rw, mode="lines+markers", name=label, marker={"size": 3},
                                 customdata=pts[:, 0], hovertemplate="step %{customdata}<br>KL %{x:.2f}"
                                 "<br>reward %{y:.3f}<extra>" + label + "</extra>"))
        fig.add_trace(go.Scatter(x=[kl[-1]], y=[rw[-1]], mode="markers", showlegend=False,
                                 marker={"size": 11, "symbol": "star"}, name=f"{label} (last)"))
    fig.update_layout(height=height, xaxis_title="KL to reference (nats / completion, smoothed)",
                      yaxis_title="reward (smoothed)", uirevision="frontier",
                      margin={"l": 40, "r": 10, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def logratio_html(tokens: list[str], logratios: list[float], scale: float = 1.0, prompt: str = "") -> str:
    """The prompt in bold, then the completion's tokens coloured by log pi/pi_ref: red where the
    policy now prefers the token more than the reference model did, blue where less, so the sample
    reads as one text. All text is HTML-escaped (it is model output)."""
    spans = [f"<b>{html.escape(prompt)}</b>"] if prompt else []
    for tok, lr in zip(tokens, logratios):
        a = max(-1.0, min(1.0, lr / scale))
        color = f"rgba(214,39,40,{a:.2f})" if a > 0 else f"rgba(31,119,180,{-a:.2f})"
        spans.append(f'<span title="log-ratio {lr:+.3f}" style="background:{color};padding:1px 0;'
                     f'border-radius:3px">{html.escape(tok)}</span>')
    return ("<div style='font-family:monospace;line-height:1.9;white-space:pre-wrap'>"
            + "".join(spans) + "</div>")


def samples_html(samples: list[dict]) -> str:
    """One row per sample: the prompt in bold and its completion as one wrapped text, then reward
    and KL. All text is HTML-escaped (it is model output)."""
    cell = "padding:4px 8px;border-bottom:1px solid rgba(128,128,128,0.25);vertical-align:top"
    num = cell + ";text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"

    def fmt(v) -> str:
        return "–" if v is None else f"{v:+.3f}"

    rows = [f"<tr><td style='{num}'>{s['idx']}</td>"
            f"<td style='{cell};white-space:pre-wrap'><b>{html.escape(s['prompt'])}</b>"
            f"{html.escape(s['completion'])}</td>"
            f"<td style='{num}'>{fmt(s.get('reward'))}</td><td style='{num}'>{fmt(s.get('kl'))}</td></tr>"
            for s in samples]
    head = (f"<tr><th style='{num}'>#</th><th style='{cell};text-align:left'>Sample (prompt in bold)</th>"
            f"<th style='{num}'>reward</th><th style='{num}'>KL</th></tr>")
    return ("<table class='samples' style='border-collapse:collapse;width:100%;font-size:0.9rem'>"
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


def pairs_html(pairs: list[dict]) -> str:
    """DPO's preference pairs: the prompt in bold, then the chosen and the rejected answer (with
    their rewards where the reward labelled them). All text is HTML-escaped (it is model output)."""
    cell = "padding:4px 8px;border-bottom:1px solid rgba(128,128,128,0.25);vertical-align:top;white-space:pre-wrap"

    def answer(p: dict, which: str) -> str:
        score = p.get(f"{which}_reward")
        return html.escape(p[which]) + ("" if score is None else f" <i>({score:+.2f})</i>")

    rows = [f"<tr><td style='{cell}'><b>{html.escape(p['prompt'])}</b></td><td style='{cell}'>{answer(p, 'chosen')}"
            f"</td><td style='{cell}'>{answer(p, 'rejected')}</td></tr>" for p in pairs]
    head = f"<tr><th style='{cell}'>prompt</th><th style='{cell}'>chosen</th><th style='{cell}'>rejected</th></tr>"
    return ("<table class='pairs' style='border-collapse:collapse;width:100%;font-size:0.9rem'>"
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


def run_figure(run, max_points: int = LIVE_MAX_POINTS):
    """The Playground's live panels for a run, as an Altair chart for a notebook: `run` is a
    `rlhf_core.Run` handle or a run id. Redraw it with an IPython display handle to watch it live
    (`Run.watch()` does)."""
    from .api import Run

    run = run if isinstance(run, Run) else Run(run)
    info = run.info()
    store_events = run.events().to_dict("records")
    spec = live_spec(run.rows(), store_events, f"Charts of run {run.id}", max_points,
                     algorithm=(info.config or {}).get("algorithm"))
    title = f"{run.id}: {info.status}, step {info.steps_done}/{info.steps_total}"
    return alt.Chart.from_dict({**spec, "title": {"text": title, "anchor": "start"}})
