"""T3b lab `overoptimization`: push a proxy reward model too hard and the true reward falls
(Gao, Schulman & Hilton 2022, "Scaling laws for reward model overoptimization").

Paper claim (Sun 2023, takeaway 3): the reward model is only a proxy of expensive human feedback.
Setup (Gao's synthetic one): the embedded `gold-rm` plays the human; proxies are trained with TRL's
RewardTrainer on n pairs *labelled by the gold RM*. GRPO (the playground's engine) then optimises
the base policy against each proxy at each beta, and every rollout is also scored by the gold RM.
The distance from the initial policy is d = sqrt(KL), KL measured per completion at sampling time.
Gao's fit for RL: R(d) = d (alpha - beta log d), rewards relative to the initial policy.
Expected: the proxy reward keeps rising while the gold reward rises, peaks and falls; proxies
trained on fewer labels peak earlier (at smaller d).
"""

from __future__ import annotations

import functools
import math
import statistics

from .support import imdb
from .support.common import Progress, fit_two_terms, fork_map, LabConfig, knob, lab_workers
from .support.verdict import Check

NAME = "overoptimization"



class Config(LabConfig):
    labels: list[int] = knob([50, 300], "Gold labels each proxy reward model is trained on.", lo=10, hi=1000)
    betas: list[float] = knob([0.0], "KL coefficients beta to run for each proxy.", lo=0.0, hi=1.0)
    rl_steps: int = knob(12, "GRPO steps per run (16 completions each).", lo=5, hi=60)
    learning_rate: float = knob(1e-3, "RL learning rate: high, to travel far from the start quickly.",
                                lo=1e-5, hi=3e-3)
    seed: int = knob(0, "Seed for labels, training and sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        from ..config import ConfigError

        if len(self.labels) * len(self.betas) * self.rl_steps > 96:
            raise ConfigError(f"labels x betas x rl_steps = {len(self.labels) * len(self.betas) * self.rl_steps} "
                              "RL steps is over the lab's budget of 96 (about a minute on 2 cores)")


QUICK = {"rl_steps": 12}  # the default: fewer steps stop before the gold reward falls
LARGEST = {"labels": [50, 300, 1000], "betas": [0.0, 0.1], "rl_steps": 16}


def gao_rl_fit(d: list[float], gain: list[float]) -> dict:
    """Least squares for gain = d (alpha - beta log d), at d > 0."""
    pts = [(x, y) for x, y in zip(d, gain) if x > 1e-6]
    if len(pts) < 3:
        return {"alpha": None, "beta": None}
    alpha, minus_beta = fit_two_terms([x for x, _ in pts], [y for _, y in pts], lambda x: x, lambda x: x * math.log(x))
    return {"alpha": alpha, "beta": -minus_beta}


_SHARED: dict = {}  # models and data loaded once, inherited by forked workers


def _label_budget(n: int, cfg: Config) -> list[dict]:
    """One proxy trained on n gold labels, then one GRPO run per beta against it. Seeded from the
    config alone, so the result does not depend on which process runs it or in which order."""
    base, tok, gold = _SHARED["base"], _SHARED["tok"], _SHARED["gold"]
    proxy = imdb.gold_trained_proxy(_SHARED["train_reviews"], n, tok, gold, cfg.seed)
    proxy_acc = imdb.pair_accuracy(proxy, _SHARED["held"])
    out = []
    for beta in cfg.betas:
        series = {"step": [], "sqrt_kl": [], "proxy": [], "proxy_sem": [], "gold": [], "gold_sem": []}

        def on_step(step, metrics, roll, series=series, beta=beta):
            series["step"].append(step)
            series["sqrt_kl"].append(math.sqrt(max(0.0, metrics["kl"] or 0.0)))
            for key, scores in (("proxy", proxy(roll.completions)), ("gold", gold(roll.completions))):
                series[key].append(statistics.fmean(scores))
                series[f"{key}_sem"].append(statistics.stdev(scores) / math.sqrt(len(scores)))

        imdb.train_grpo(imdb.fresh_copy(base), tok, proxy, f"proxy-{n}", steps=cfg.rl_steps, kl_coef=beta,
                        learning_rate=cfg.learning_rate, seed=cfg.seed, prompts=_SHARED["prompts"], on_step=on_step)
        g0, p0 = series["gold"][0], series["proxy"][0]
        out.append({"beta": beta, "labels": n, "proxy_accuracy": round(proxy_acc, 4), **series,
                    "fit_gold": gao_rl_fit(series["sqrt_kl"], [g - g0 for g in series["gold"]]),
                    "fit_proxy": gao_rl_fit(series["sqrt_kl"], [x - p0 for x in series["proxy"]])})
    return out


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the base policy and the gold judge")
    from ..prompts import prompt_texts

    s = imdb.setup(cfg.threads, cfg.seed)
    _SHARED.update(base=s.base, tok=s.tok, gold=s.gold, train_reviews=s.train_reviews,
                   prompts=prompt_texts(s.tok, 8, "train"),
                   held=imdb.gold_labelled_pairs(s.held_reviews, 40, s.tok, s.gold, cfg.seed + 1))
    labels = list(dict.fromkeys(cfg.labels))
    workers = min(lab_workers(), len(labels))
    p(0.05, f"proxy+rl: {len(labels)} label budgets, each a proxy then {len(cfg.betas)} GRPO run(s), "
            f"on {workers} process(es)")
    by_labels = fork_map(functools.partial(_label_budget, cfg=cfg), labels, workers,
                         lambda n, done: p(0.05 + 0.9 * done / len(labels),
                                           f"proxy+rl: {done}/{len(labels)} label budgets done"))
    _SHARED.clear()
    runs_out = [r for n in labels for r in by_labels[n]]
    p(1.0, "done")
    return {"lab": NAME, "config": cfg.model_dump(), "runs": runs_out, "workers": workers,
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def _smooth(xs: list[float], k: int = 3) -> list[float]:
    return [statistics.fmean(xs[max(0, i - k + 1):i + 1]) for i in range(len(xs))]


def peak(run: dict) -> dict:
    """Where the (3-step smoothed) gold reward peaks, and how far it has fallen by the end."""
    gold = _smooth(run["gold"])
    i = max(range(len(gold)), key=gold.__getitem__)
    return {"index": i, "sqrt_kl": run["sqrt_kl"][i], "gold": gold[i], "drop": gold[i] - gold[-1],
            "final_sqrt_kl": run["sqrt_kl"][-1]}


def _leashless_runs(result: dict) -> list[dict]:
    """The runs at the smallest beta: the walk away from the start is longest there."""
    lowest = min(x["beta"] for x in result["runs"])
    return [r for r in result["runs"] if r["beta"] == lowest]


def _proxy_rises(result: dict) -> str | None:
    seen = []
    for r in _leashless_runs(result):
        proxy = _smooth(r["proxy"])
        if not proxy[-1] > proxy[0]:
            seen.append(f"with {r['labels']} labels the proxy went {proxy[0]:.2f} -> {proxy[-1]:.2f}")
    return "; ".join(seen) or None


def late_fall(run: dict) -> dict:
    """Gold reward of the middle third of the steps minus that of the last third (each the mean of
    its steps' means), with the 95 % interval from every step's standard error. Over-optimisation
    shows as a fall above 0; a gold reward that keeps rising, or only wobbles, shows none."""
    n = len(run["gold"]) // 3
    middle, last = slice(n, 2 * n), slice(len(run["gold"]) - n, None)

    def window(s):
        means, sems = run["gold"][s], run["gold_sem"][s]
        return statistics.fmean(means), math.sqrt(sum(x * x for x in sems)) / len(sems)

    (m_mid, s_mid), (m_last, s_last) = window(middle), window(last)
    half = 1.96 * math.hypot(s_mid, s_last)
    return {"fall": m_mid - m_last, "low": m_mid - m_last - half, "high": m_mid - m_last + half, "steps": n}


def _gold_peaks_and_falls(result: dict) -> str | None:
    small = min(_leashless_runs(result), key=lambda r: r["labels"])
    f = late_fall(small)
    if f["low"] > 0:
        return None
    return (f"with {small['labels']} labels the gold reward of the last {f['steps']} steps was {f['fall']:.2f} below "
            f"that of the {f['steps']} before, 95 % interval [{f['low']:+.2f}, {f['high']:+.2f}] (a fall needs it "
            f"above 0)")


def _fewer_labels_peak_earlier(result: dict) -> str | None:
    runs = _leashless_runs(result)
    small, large = min(runs, key=lambda r: r["labels"]), max(runs, key=lambda r: r["labels"])
    if small is large:
        return "needs two label budgets"
    d_small, d_large = peak(small)["sqrt_kl"], peak(large)["sqrt_kl"]
    if d_small < d_large:
        return None
    return (f"the gold reward peaked at d = {d_small:.2f} with {small['labels']} labels and at d = {d_large:.2f} "
            f"with {large['labels']}")


CHECKS = [
    Check("proxy_rises", "Under RL the proxy reward keeps rising (smoothed, last step above the first) for every "
          "label budget.", "Gao et al. 2022, Fig. 1 and 2 (proxy curves)",
          "RL that does not learn leaves the proxy flat; test: each proxy series reversed.", _proxy_rises),
    Check("gold_peaks_and_falls", "The gold reward of the policy optimised against the fewest-label proxy rises, "
          "then falls: its last third of the steps scores below its middle third, by more than the 95 % noise of "
          "the per-step means.",
          "Gao et al. 2022, Fig. 1b and Sec. 3: over-optimisation",
          "An optimiser of a good enough proxy, or of the judge itself, never sees the judge fall; test: the "
          "gold series replaced by the proxy's own (a proxy that is its own judge).", _gold_peaks_and_falls),
    Check("fewer_labels_peak_earlier", "The proxy trained on fewer labels over-optimises sooner: its gold reward "
          "peaks at a smaller d = √KL than the proxy with the most labels.",
          "Gao et al. 2022, Fig. 3 and 6: larger reward-model data peaks later",
          "Label budgets that make no difference peak in either order; test: the two runs' gold series swapped.",
          _fewer_labels_peak_earlier),
]


def headline(result: dict) -> str:
    parts = []
    for r in _leashless_runs(result):
        f = late_fall(r)
        parts.append(f"{r['labels']} labels: gold peaks at d = {peak(r)['sqrt_kl']:.1f}; last third vs middle "
                     f"{-f['fall']:+.2f} (95 % [{-f['high']:+.2f}, {-f['low']:+.2f}])")
    return "; ".join(parts)
