"""Plotly figures for runs (usable from a notebook as well as from the app).

All figures downsample to at most MAX_POINTS per trace: the browser redraws the whole chart on
every update, and a few thousand points per trace keep that cheap.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_POINTS = 3000
LIVE_PANELS = (
    ("reward", "Reward (mean ± std)"),
    ("kl", "KL to reference (nats / completion)"),
    ("objective", "Objective = reward − β·KL"),
    ("entropy", "Entropy (nats / token)"),
    ("clip_fraction", "Clip fraction"),
    ("response_length", "Response length (tokens)"),
)
KNOB_SYMBOL = {"kl_coef": "β", "clip_range": "ε"}


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


def series(rows: list[dict], key: str) -> tuple[list, list]:
    xs, ys = [], []
    for r in rows:
        v = _num(r.get(key))
        if v is not None:
            xs.append(r["step"])
            ys.append(v)
    return xs, ys


def live_figure(rows: list[dict], events: list[dict] | None = None, height: int = 520) -> go.Figure:
    """The Playground's six panels, with dashed vertical markers where beta or epsilon changed."""
    rows = downsample(rows)
    fig = make_subplots(rows=2, cols=3, subplot_titles=[t for _, t in LIVE_PANELS],
                        horizontal_spacing=0.07, vertical_spacing=0.16)
    for i, (key, _title) in enumerate(LIVE_PANELS):
        r, c = divmod(i, 3)
        xs, ys = series(rows, key)
        if key == "reward":
            _, sd = series(rows, "reward_std")
            if len(sd) == len(ys) and ys:
                upper = [m + s for m, s in zip(ys, sd)]
                lower = [m - s for m, s in zip(ys, sd)]
                fig.add_trace(go.Scatter(x=xs + xs[::-1], y=upper + lower[::-1], fill="toself",
                                         line={"width": 0}, fillcolor="rgba(31,119,180,0.18)",
                                         hoverinfo="skip", showlegend=False, name="± std"), r + 1, c + 1)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=key, showlegend=False,
                                 line={"width": 2}), r + 1, c + 1)
    for ev in events or []:
        if ev.get("kind") != "knob":
            continue
        label = f"{KNOB_SYMBOL.get(ev.get('name'), ev.get('name'))}→{ev.get('to'):g}"
        for i in range(len(LIVE_PANELS)):
            r, c = divmod(i, 3)
            fig.add_vline(x=ev["step"], line_dash="dash", line_color="#d62728", line_width=1,
                          row=r + 1, col=c + 1)
        fig.add_annotation(x=ev["step"], y=1.0, yref="y domain", text=label, showarrow=False,
                           font={"color": "#d62728", "size": 11}, xanchor="left", row=1, col=1)
    fig.update_layout(height=height, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      uirevision="live", hovermode="x unified")
    fig.update_xaxes(title_text="step", row=2)
    return fig


def overlay_figure(runs: dict[str, list[dict]], metric: str, height: int = 380) -> go.Figure:
    fig = go.Figure()
    for label, rows in runs.items():
        xs, ys = series(downsample(rows), metric)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label))
    fig.update_layout(height=height, xaxis_title="step", yaxis_title=metric, uirevision="overlay",
                      margin={"l": 40, "r": 10, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def smooth(values: list[float], window: int = 5) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def frontier_figure(runs: dict[str, list[dict]], height: int = 420) -> go.Figure:
    """Reward against KL along each run (smoothed): where each beta settles on the trade-off."""
    fig = go.Figure()
    for label, rows in runs.items():
        pts = [(r["step"], _num(r.get("kl")), _num(r.get("reward"))) for r in downsample(rows)]
        pts = [p for p in pts if p[1] is not None and p[2] is not None]
        if not pts:
            continue
        steps = [p[0] for p in pts]
        kl, rw = smooth([p[1] for p in pts]), smooth([p[2] for p in pts])
        fig.add_trace(go.Scatter(x=kl, y=rw, mode="lines+markers", name=label, marker={"size": 3},
                                 text=[f"step {s}" for s in steps]))
        fig.add_trace(go.Scatter(x=[kl[-1]], y=[rw[-1]], mode="markers", showlegend=False,
                                 marker={"size": 11, "symbol": "star"}, name=f"{label} (last)"))
    fig.update_layout(height=height, xaxis_title="KL to reference (nats / completion, smoothed)",
                      yaxis_title="reward (smoothed)", uirevision="frontier",
                      margin={"l": 40, "r": 10, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def logratio_html(tokens: list[str], logratios: list[float], scale: float = 1.0) -> str:
    """Tokens coloured by log pi/pi_ref: red where the policy now prefers the token more than the
    reference model did, blue where less. Token text is HTML-escaped (it is model output)."""
    spans = []
    for tok, lr in zip(tokens, logratios):
        a = max(-1.0, min(1.0, lr / scale))
        color = f"rgba(214,39,40,{a:.2f})" if a > 0 else f"rgba(31,119,180,{-a:.2f})"
        spans.append(f'<span title="log-ratio {lr:+.3f}" style="background:{color};padding:1px 0;'
                     f'border-radius:3px;white-space:pre-wrap">{html.escape(tok)}</span>')
    return "<div style='font-family:monospace;line-height:1.9'>" + "".join(spans) + "</div>"
