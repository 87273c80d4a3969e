"""Plotly figures for the labs: measured series with least-squares fits of the published functional
forms drawn over them (dashed). They are fits to the points measured here, not published curves.

Kept apart from the experiments so that `rlhf_core.labs.<lab>` stays free of plotting imports."""

from __future__ import annotations

import math

import plotly.graph_objects as go

MEASURED = dict(mode="lines+markers")
REFERENCE = dict(mode="lines", line=dict(dash="dash"))
COLORS = {"a": "#d62728", "b": "#1f77b4", "c": "#2ca02c", "d": "#9467bd", "e": "#ff7f0e"}


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=360, margin=dict(l=40, r=10, t=40, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.35))
    return fig


def compounding_error(result: dict) -> list[go.Figure]:
    H, eps = result["horizons"], result["epsilon"]
    fits = result["fits"]
    dense = [H[0] + (H[-1] - H[0]) * i / 60 for i in range(61)]
    f1 = go.Figure()
    f1.add_scatter(x=H, y=result["bc_mistakes"], name="behaviour cloning (measured)", line_color=COLORS["a"], **MEASURED)
    f1.add_scatter(x=dense, y=[fits["bc"]["c_quadratic"] * eps * t * t for t in dense], line_color=COLORS["a"],
                   name=f"least-squares c·ε·T² (c={fits['bc']['c_quadratic']:.2f}, R²={fits['bc']['r2_quadratic']:.2f})", **REFERENCE)
    f1.add_scatter(x=H, y=result["online_mistakes"], name="online / DAgger (measured)", line_color=COLORS["b"],
                   **MEASURED)
    f1.add_scatter(x=dense, y=[fits["online"]["c_linear"] * eps * t for t in dense], line_color=COLORS["b"],
                   name=f"least-squares c·ε·T (c={fits['online']['c_linear']:.2f}, R²={fits['online']['r2_linear']:.2f})", **REFERENCE)
    _layout(f1, "Mistakes per sequence vs horizon T", "horizon T (tokens)", "mistakes per sequence")

    T = len(result["bc"]["first_mistake"]) - 1
    f2 = go.Figure()
    for who, label, color in (("bc", "behaviour cloning", COLORS["a"]), ("online", "online / DAgger", COLORS["b"])):
        counts = result[who]["first_mistake"][:T]
        f2.add_bar(x=list(range(1, T + 1)), y=counts, name=label, marker_color=color, opacity=0.6)
    f2.update_layout(barmode="overlay")
    _layout(f2, "Position of the first mistake", "position", "rollouts")

    f3 = go.Figure()
    for who, label, color in (("bc", "behaviour cloning", COLORS["a"]), ("online", "online / DAgger", COLORS["b"])):
        err = result[who]["per_position_error"]
        f3.add_scatter(x=list(range(1, len(err) + 1)), y=err, name=label, line_color=color, mode="lines")
    f3.add_scatter(x=[1, T], y=[eps, eps], name="ε (slip rate)", line=dict(dash="dot", color="gray"), mode="lines")
    _layout(f3, "Error rate at each position", "position", "P(mistake)")
    return [f1, f2, f3]


def pipeline(result: dict) -> list[go.Figure]:
    pol = result["policies"]
    names = ["base", "sft", "rlhf"]
    f1 = go.Figure()
    f1.add_bar(x=names, y=[pol[n]["gold"] for n in names], name="gold reward (held-out judge)",
               error_y=dict(type="data", array=[2 * pol[n]["gold_sem"] for n in names]), marker_color=COLORS["c"])
    f1.add_bar(x=names, y=[pol[n]["proxy"] for n in names], name="reward model (optimised)", marker_color=COLORS["d"])
    f1.update_layout(barmode="group")
    _layout(f1, "Gold and proxy reward of each policy", "policy", "mean reward (logit)")
    f2 = go.Figure()
    f2.add_scatter(x=[pol[n]["kl"] for n in names], y=[pol[n]["gold"] for n in names], text=names,
                   mode="markers+text+lines", textposition="top center", marker_size=12, line_color=COLORS["b"],
                   name="policies")
    _layout(f2, "Gold reward vs KL from the base model", "KL(π ‖ base) (nats)", "gold reward")
    curve = result["stages"]["rl"]["curve"]
    f3 = go.Figure()
    f3.add_scatter(x=curve["step"], y=curve["proxy"], name="reward-model score", line_color=COLORS["d"], **MEASURED)
    f3.add_scatter(x=curve["step"], y=curve["kl"], name="KL to SFT (nats)", yaxis="y2", line_color=COLORS["e"],
                   **MEASURED)
    f3.update_layout(yaxis2=dict(overlaying="y", side="right", title="KL"))
    _layout(f3, "Online RL (GRPO) against the reward model", "RL step", "reward")
    return [f1, f2, f3]


def rm_curve(result: dict) -> go.Figure:
    labels, acc, fit = result["labels"], result["accuracy"], result["fit"]
    fig = go.Figure()
    fig.add_scatter(x=labels, y=acc, name="held-out pair accuracy (measured)", line_color=COLORS["b"], **MEASURED)
    fig.add_scatter(x=labels, y=result["train_accuracy"], name="accuracy on its own training pairs",
                    line=dict(color=COLORS["b"], dash="dot"), mode="lines+markers")
    xs = [labels[0] * (labels[-1] / labels[0]) ** (i / 40) for i in range(41)]
    fig.add_scatter(x=xs, y=[fit["a"] + fit["b"] * math.log(x) for x in xs], line_color=COLORS["b"],
                    name=f"least-squares a + b·log n (b={fit['b']:.3f}, R²={fit['r2']:.2f})", **REFERENCE)
    for e in result.get("embedded", []):
        if e.get("labels") and e.get("accuracy"):
            fig.add_scatter(x=[e["labels"]], y=[e["accuracy"]], mode="markers+text", text=[e["name"]],
                            textposition="bottom center", marker=dict(size=11, symbol="diamond", color=COLORS["a"]),
                            name=f"embedded {e['name']} (zoo build recipe)")
    fig.add_hline(y=0.5, line_dash="dot", line_color="gray", annotation_text="chance")
    fig.update_xaxes(type="log")
    return _layout(fig, "Reward-model accuracy vs preference labels", "labels (pairs, log scale)", "pair accuracy")


ROLE_DASH = {"effect": "solid", "null": "dot", "control": "dash"}


def overoptimization(result: dict) -> list[go.Figure]:
    """T3b: each arm's judge score and proxy score against d = √KL at the evaluation checkpoints,
    the judge with ±1 SE over the eval prompts (solid: effect arms, dotted: the null, dashed: the
    control)."""
    import statistics

    figs = []
    palette = list(COLORS.values())
    for key, title, y in (("gold", "Judge (gold′; gold-rm for the correlated arm) vs distance from the start",
                           "judge score"),
                          ("proxy", "What each arm optimises vs distance from the start", "proxy score")):
        fig = go.Figure()
        for i, a in enumerate(result["arms"]):
            error = None
            if key == "gold":
                se = [statistics.stdev(x) / math.sqrt(len(x)) for x in a["gold_per_prompt"]]
                error = dict(type="data", array=se, visible=True, thickness=1)
            fig.add_scatter(x=a["sqrt_kl"], y=a[key], error_y=error, mode="lines+markers",
                            name=f"{a['name']} ({a['role']})", line=dict(color=palette[i % len(palette)],
                                                                         dash=ROLE_DASH.get(a["role"], "solid")),
                            text=[f"step {s}, KL {k:.1f}" for s, k in zip(a["step"], a["kl"])])
        figs.append(_layout(fig, title, "d = √KL (nats^½)", y))
    return figs


def best_of_n(result: dict) -> list[go.Figure]:
    """T3c: gold′ and proxy of each arm's best-of-n against d = √KL_bon, gains over n = 1."""
    palette = list(COLORS.values())
    d = result["sqrt_kl"]
    figs = []
    for key, title in (("gold_curve", "Gold′ of the proxy's best of n: gain over n = 1"),
                       ("proxy_curve", "The proxy's own score of its best of n: gain over n = 1")):
        fig = go.Figure()
        for i, a in enumerate(result["arms"]):
            curve = a[key]
            fig.add_scatter(x=d, y=[g - curve[0] for g in curve], text=[f"n={n}" for n in result["n"]],
                            name=f"{a['name']} ({a['role']})", mode="lines+markers",
                            line=dict(color=palette[i % len(palette)], dash=ROLE_DASH.get(a["role"], "solid")))
        figs.append(_layout(fig, title, "d = √(log n − (n−1)/n)", "gain over n = 1"))
    return figs


def prompt_oirl(result: dict) -> list[go.Figure]:
    names = ["random prompt", "best single prompt", "Prompt-OIRL (per query)", "oracle (hindsight)"]
    values = [result["random"], result["best_single"], result["oirl"], result["oracle"]]
    f1 = go.Figure(go.Bar(x=names, y=values, marker_color=[COLORS["e"], COLORS["b"], COLORS["c"], "gray"]))
    _layout(f1, "Held-out reward of the chosen prompts", "", "mean reward (agreement with the true verdict)")
    f2 = go.Figure()
    f2.add_bar(x=result["prompts"], y=result["log_mean_per_prompt"], name="offline logs", marker_color=COLORS["b"])
    f2.add_bar(x=result["prompts"], y=result["test_mean_per_prompt"], name="held-out queries", marker_color=COLORS["c"])
    f2.add_scatter(x=result["prompts"], y=[c / max(1, sum(result["oirl_choices"])) for c in result["oirl_choices"]],
                   name="share of queries Prompt-OIRL gave this prompt", mode="markers", yaxis="y2",
                   marker=dict(size=12, color=COLORS["a"]))
    f2.update_layout(barmode="group", yaxis2=dict(overlaying="y", side="right", range=[0, 1], title="share"))
    _layout(f2, "Each prompt on average, and how often it was chosen", "prompt template", "mean reward")
    return [f1, f2]


def band(fig: go.Figure, x, mean, std, name: str, color: str) -> None:
    """A mean line with a ±1 std band (for the stability lab's seeds)."""
    upper = [m + s for m, s in zip(mean, std)]
    lower = [m - s for m, s in zip(mean, std)]
    fig.add_scatter(x=list(x) + list(x)[::-1], y=upper + lower[::-1], fill="toself", line=dict(width=0),
                    fillcolor=color, opacity=0.2, showlegend=False, hoverinfo="skip")
    fig.add_scatter(x=list(x), y=mean, name=name, line_color=color, mode="lines")


def safe_log(x: float) -> float:
    return math.log(x) if x > 0 else float("-inf")


# T5 arms: clipped in blues and unclipped in reds, darker with more epochs; the null pair in greys
STABILITY_COLORS = {"clip_k1_m1": "#7f7f7f", "noclip_k1_m1": "#c7c7c7", "clip_k1": "#9ecae1", "clip_k4": "#4292c6",
                    "clip_k10": "#08519c", "noclip_k1": "#fc9272", "noclip_k4": "#ef3b2c", "noclip_k10": "#99000d",
                    "q_learning": "#9467bd", "q_learning_v64": "#54278f", "clip_k1_v64": "#17becf"}


def _stability_color(name: str) -> str:
    return STABILITY_COLORS.get(name, "#ff7f0e" if name.startswith("clip_replay") else "gray")


def stability(result: dict, rate_index: int | None = None) -> list[go.Figure]:
    """T5: against the learning rate (log axis), each method's final reward (mean, every seed, × =
    collapsed; a filled marker where the method works: no collapse and above the learning bar) and
    the share of its seeds that collapsed; then, at one position of the grid (default: the largest
    rate), reward and KL during training (mean ± std over seeds, each seed faint)."""
    import numpy as np

    steps, methods = result["steps"], result["methods"]
    seeds = result["seeds"]
    finals = go.Figure()
    share = go.Figure()
    for name, data in methods.items():
        color = _stability_color(name)
        rates, works = data["learning_rates"], data.get("works", [True] * len(data["learning_rates"]))
        for lr, f, c in zip(rates, data["final_reward"], data["collapsed"]):
            finals.add_scatter(x=[lr] * len(f), y=f, mode="markers", showlegend=False, opacity=0.45,
                               marker=dict(color=color, size=8, symbol=["x" if x else "circle" for x in c]),
                               text=[f"{name}, seed {i + 1}{' (collapsed)' if x else ''}" for i, x in enumerate(c)],
                               hoverinfo="text+y")
        finals.add_scatter(x=rates, y=data["mean_final_reward"], name=name, mode="lines+markers", line_color=color,
                           marker=dict(size=12, symbol=["circle" if w else "circle-open" for w in works],
                                       line=dict(width=2, color=color)))
        share.add_scatter(x=rates, y=[k / seeds for k in data["collapses"]], name=name, mode="lines+markers+text",
                          line_color=color, text=[f"{k}/{seeds}" for k in data["collapses"]], textposition="top center")
    if "learn_bar" in result:
        finals.add_hline(y=result["learn_bar"], line=dict(dash="dash", color="gray"),
                         annotation_text="learning bar", annotation_position="bottom right")
    finals.add_hline(y=result["uniform_reward"], line=dict(dash="dot", color="gray"),
                     annotation_text="uniform policy", annotation_position="bottom right")
    _layout(finals, "Final reward vs learning rate (filled = works there; × = collapsed seed)", "learning rate",
            "final expected reward")
    finals.update_xaxes(type="log")
    _layout(share, "Seeds that collapsed vs learning rate", "learning rate", "share of seeds")
    share.update_xaxes(type="log")
    share.update_yaxes(range=[-0.05, 1.15])
    figs = [finals, share]

    index = len(next(iter(methods.values()))["learning_rates"]) - 1 if rate_index is None else rate_index
    for key, title, y_title in (("reward_curves", "Reward during training (mean ± std over seeds)", "expected reward"),
                                ("kl_curves", "KL(current ‖ initial policy)", "mean KL per state (nats)"),
                                ("update_kl_curves", "Size of the updates: KL between consecutive checkpoints",
                                 "KL(previous ‖ current) (nats)")):
        fig = go.Figure()
        log_scale = key == "update_kl_curves"  # update sizes span decades; the first point has no update yet
        x = steps[1:] if log_scale else steps
        for name, data in methods.items():
            color = _stability_color(name)
            label = f"{name} (lr {data['learning_rates'][index]:g})"
            curves = np.array(data[key][index], dtype=float)[:, :len(steps)]
            curves = curves[:, 1:] if log_scale else curves
            for curve in curves:  # every seed, faint: a collapse shows as a line that leaves the band
                fig.add_scatter(x=x, y=list(curve), mode="lines", line=dict(color=color, width=1),
                                opacity=0.3, showlegend=False, hoverinfo="skip")
            if log_scale:  # a ±std band dips below zero on a log axis: the mean line only
                fig.add_scatter(x=x, y=list(curves.mean(0)), name=label, line_color=color, mode="lines")
            else:
                band(fig, x, list(curves.mean(0)), list(curves.std(0)), label, color)
        figs.append(_layout(fig, title, "env steps (tokens written)", y_title))
    figs[4].update_yaxes(type="log")
    return figs


# ---- T4: action space and sparse reward (action_space), per-token credit (credit) --------------------

GRANULARITY_STYLE = {"dense": ("dense per-token reward", COLORS["b"]),
                     "sparse": ("sparse sequence reward", COLORS["a"])}


def action_space(result: dict) -> list[go.Figure]:
    """Steps to the threshold vs V (log-log) with least-squares c·V fits, learning curves, and the sparse/dense ratio."""
    vocab, cap, per_seed = result["vocab"], result["step_cap"], result["per_seed"]
    grid = [vocab[0] * (vocab[-1] / vocab[0]) ** (i / 60) for i in range(61)]
    steps = go.Figure()
    for g, (label, color) in GRANULARITY_STYLE.items():
        medians = result[f"{g}_steps"]
        reached = [(v, s) for v, s in zip(vocab, medians) if s is not None]
        steps.add_scatter(x=[v for v, _ in reached], y=[s for _, s in reached], name=f"{label} (median)",
                          line_color=color, **MEASURED)
        missed = [v for v, s in zip(vocab, medians) if s is None]
        if missed:  # honest about runs that never got there: drawn at the cap, hollow
            steps.add_scatter(x=missed, y=[cap] * len(missed), mode="markers", name=f"{label}: not reached (at cap)",
                              marker=dict(symbol="triangle-up-open", size=13, color=color))
        xs, ys = [], []
        for v, seed_steps in zip(vocab, per_seed[g]["steps"]):
            for s in seed_steps:
                xs.append(v)
                ys.append(cap if s is None else s)
        steps.add_scatter(x=xs, y=ys, mode="markers", name=f"{label}: each seed", opacity=0.35,
                          marker=dict(color=color, size=6), showlegend=True)
        fit = result["fits"][g]
        if fit["c_linear"]:
            k = (fit.get("power") or {}).get("exponent", float("nan"))
            steps.add_scatter(x=grid, y=[fit["c_linear"] * v for v in grid], line_color=color,
                              name=f"least-squares c·V (c={fit['c_linear']:.2f}; power fit V^{k:.2f})", **REFERENCE)
    if any(not ok for g in GRANULARITY_STYLE for row in per_seed[g]["reached"] for ok in row):
        steps.add_scatter(x=[vocab[0], vocab[-1]], y=[cap, cap], mode="lines", name="step cap",
                          line=dict(dash="dot", color="gray"))
    _layout(steps, f"Steps until {result['threshold']:.0%} of sampled tokens are right", "vocabulary size V",
            "policy-gradient steps")
    steps.update_xaxes(type="log")
    steps.update_yaxes(type="log")

    curves = go.Figure()
    shades = ["#08306b", "#2171b5", "#6baed6", "#41ab5d", "#fd8d3c", "#e31a1c", "#7a0177"]
    for i, v in enumerate(vocab):
        color = shades[i % len(shades)]
        for g, dash in (("dense", "solid"), ("sparse", "dash")):
            c = result["curves"][g][i][0]  # the first seed
            curves.add_scatter(x=c["step"], y=c["accuracy"], mode="lines", name=f"V={v}, {g}",
                               line=dict(color=color, dash=dash))
    curves.add_scatter(x=[1, max(cap, 2)], y=[result["threshold"]] * 2, mode="lines", name="threshold",
                       line=dict(dash="dot", color="gray"))
    _layout(curves, "Learning curves, first seed (solid dense, dashed sparse)", "step", "right tokens in the batch")
    curves.update_xaxes(type="log")

    ratio = go.Figure()
    ratio.add_bar(x=[str(v) for v in vocab], y=[r if r is not None else 0 for r in result["sparse_over_dense"]],
                  marker_color=COLORS["d"], name="sparse ÷ dense steps",
                  text=[f"{r:.1f}×" if r is not None else "n/a" for r in result["sparse_over_dense"]])
    ratio.add_scatter(x=[str(v) for v in vocab], y=[1] * len(vocab), mode="lines", name="equal",
                      line=dict(dash="dot", color="gray"))
    _layout(ratio, "How many times more steps the sparse reward needs", "vocabulary size V", "sparse ÷ dense")
    return [steps, curves, ratio]


def _credit_heat(result: dict, title: str, z_of, colorbar: str) -> go.Figure:
    samples = result["samples"]
    width = max(len(s["tokens"]) for s in samples)
    rows = [f"p{s['group']} · #{i} · r={s['score']:+.2f}" for i, s in enumerate(samples)]
    z, text = [], []
    for s in samples:
        vals = z_of(s)
        z.append(vals + [None] * (width - len(vals)))
        text.append(s["tokens"] + [""] * (width - len(s["tokens"])))
    fig = go.Figure(go.Heatmap(z=z, x=list(range(1, width + 1)), y=rows, text=text, texttemplate="%{text}",
                               textfont=dict(size=9), colorscale="RdBu", zmid=0, colorbar=dict(title=colorbar),
                               hovertemplate="%{y}<br>token %{x}: '%{text}'<br>advantage %{z:.3f}<extra></extra>"))
    _layout(fig, title, "token position in the completion", "")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=120 + 22 * len(samples), showlegend=False)
    return fig


def credit(result: dict, sample: int = 0) -> list[go.Figure]:
    """Per-token advantages: PPO's GAE (whitened, as its loss sees them) beside GRPO's and RLOO's one
    number per completion, then one completion's values, rewards, returns and GAE in detail."""
    ppo = _credit_heat(result, "PPO: GAE advantage of every token (whitened, as in TRL's loss)",
                       lambda s: s["gae_whitened"], "Â_t")
    grpo = _credit_heat(result, "GRPO: one advantage per completion, (r − group mean) / group std",
                        lambda s: [s["grpo"]] * len(s["tokens"]), "A")
    rloo = _credit_heat(result, "RLOO: one advantage per completion, r − mean of the others (reward units)",
                        lambda s: [s["rloo"]] * len(s["tokens"]), "A")
    s = result["samples"][max(0, min(sample, len(result["samples"]) - 1))]
    x = list(range(1, len(s["tokens"]) + 1))
    detail = go.Figure()
    detail.add_bar(x=x, y=s["gae"], name="GAE advantage Â_t (raw)", marker_color=COLORS["b"], opacity=0.7)
    detail.add_scatter(x=x, y=s["values"], name="value V(s_t)", line_color=COLORS["c"], **MEASURED)
    detail.add_scatter(x=x, y=s["returns"], name="return Â_t + V(s_t)", line_color=COLORS["d"], mode="lines")
    detail.add_scatter(x=x, y=s["rewards"], name="reward r_t (−β·log-ratio, + score at the end)",
                       line_color=COLORS["e"], mode="lines+markers")
    detail.add_scatter(x=[x[0], x[-1]], y=[s["rloo"]] * 2, name="RLOO advantage (every token)",
                       line=dict(dash="dash", color=COLORS["a"]), mode="lines")
    detail.update_xaxes(tickmode="array", tickvals=x, ticktext=s["tokens"], tickangle=-45)
    _layout(detail, f"One completion in detail (score {s['score']:+.2f})", "token", "reward units")
    return [ppo, grpo, rloo, detail]


def offline_online(result: dict) -> list[go.Figure]:
    """Per pair condition, every evaluation of every run as gold vs KL (faint), each method's KL-binned
    frontier (bold), and the gaps (online − DPO per condition, and their difference) with 95 %
    intervals over the held-out prompts."""
    from ..offline_online import BINS, CONDITIONS, LABELS, frontier, gap
    from .common import paired_ci

    colors = {"dpo": COLORS["b"], "online": COLORS["a"]}
    figs = []
    for condition in CONDITIONS:
        fig = go.Figure()
        for r in result["runs"]:
            if r["condition"] != condition:
                continue
            fig.add_scatter(x=[p["kl"] for p in r["path"]], y=[p["gold"] for p in r["path"]], mode="lines+markers",
                            line=dict(color=colors[r["method"]], width=1), opacity=0.35,
                            name=f"{LABELS[r['method']]}, β={r['beta']:g}", text=[f"step {p['step']}" for p in r["path"]])
        for method in ("dpo", "online"):
            best = frontier(result, condition, method)
            xs = sorted(best)
            fig.add_scatter(x=[best[i]["kl"] for i in xs], y=[best[i]["gold"] for i in xs], mode="lines+markers",
                            line=dict(color=colors[method], width=3), name=f"{LABELS[method]}: frontier")
        for lo, _hi in BINS[1:]:
            fig.add_vline(x=lo, line=dict(color="#ccc", dash="dot"))
        figs.append(_layout(fig, f"{condition.replace('_', '-')} pairs: gold vs KL from the start",
                            "KL(π ‖ start) (nats)", "gold reward"))
    names, means, lows, highs = [], [], [], []
    gaps = {c: gap(result, c) for c in CONDITIONS}
    for c, g in gaps.items():
        if g is not None:
            names.append(f"online − DPO<br>{c.replace('_', '-')} pairs")
            means.append(g["mean"])
            lows.append(g["mean"] - g["low"])
            highs.append(g["high"] - g["mean"])
    if all(gaps.values()):
        d = paired_ci(gaps["off_policy"]["per_prompt"], gaps["reference"]["per_prompt"])
        names.append("off-policy gap<br>− reference gap")
        means.append(d["mean"])
        lows.append(d["mean"] - d["low"])
        highs.append(d["high"] - d["mean"])
    f3 = go.Figure()
    f3.add_bar(x=names, y=means, marker_color=COLORS["d"], name="paired gold gap",
               error_y=dict(type="data", symmetric=False, array=highs, arrayminus=lows))
    f3.add_hline(y=0, line_color="#999")
    figs.append(_layout(f3, "Gaps on the frontiers (95 % interval over held-out prompts)", "", "gold gap"))
    return figs
