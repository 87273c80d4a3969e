"""Plotly figures for runs (usable from a notebook as well as from the app).

All figures downsample to at most MAX_POINTS per trace: the browser redraws the whole chart on
every update, and a few thousand points per trace keep that cheap.
"""

from __future__ import annotations

import html
import math

import numpy as np
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


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric as numpy arrays, skipping missing and non-finite values.
    Arrays rather than lists: plotly validates a list element by element, an array at once."""
    pairs = [(r["step"], v) for r in rows if (v := _num(r.get(key))) is not None]
    if not pairs:
        return np.empty(0), np.empty(0)
    arr = np.asarray(pairs, dtype=float)
    return arr[:, 0], arr[:, 1]


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
            if len(sd) == len(ys) and len(ys):
                upper, lower = ys + sd, ys - sd
                fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([upper, lower[::-1]]),
                                         fill="toself", mode="lines",
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
