"""T3c lab `best_of_n`: best-of-n sampling against a proxy reward model (Gao et al. 2022).

Paper claim (Sun 2023, takeaway 3): the reward model is a proxy; any optimiser that leans on it,
even simple rejection sampling, trades real (gold) reward for proxy reward as it moves away from
the initial policy. Best-of-n draws n completions and keeps the one the proxy likes best. Its KL
from the initial policy has a closed form, KL_bon = log n - (n-1)/n, and Gao's fit for the gold
reward gain is R(d) = d (alpha - beta d) with d = sqrt(KL_bon).

Setup: the same kind of proxy as the `overoptimization` lab (TRL RewardTrainer on n gold-labelled
pairs, same seed), the base policy `imdb-tiny`, and the embedded `gold-rm` as the judge. For each
prompt we draw N completions once and compute, for every n <= N, the *exact expected* proxy and gold
score of the best of a random n-subset (an unbiased estimator over all subsets, as Gao et al. do),
so one sample set gives the whole curve.
"""

from __future__ import annotations

import math
import statistics

from .support import imdb
from .support.common import Progress, fit_two_terms, LabConfig, knob, paired_ci, r_squared
from .support.verdict import Check

NAME = "best_of_n"


class Config(LabConfig):
    labels: int = knob(50, "Gold labels the proxy reward model is trained on.", lo=10, hi=1000)
    max_n: int = knob(64, "Largest n: completions drawn per prompt.", lo=4, hi=256)
    prompts: int = knob(16, "Held-out prompts.", lo=2, hi=64)
    seed: int = knob(0, "Seed for labels, training and sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        from ..config import ConfigError

        if self.max_n * self.prompts > 4096:
            raise ConfigError(f"max_n x prompts = {self.max_n * self.prompts} completions is over the lab's "
                              "budget of 4,096 (about a minute on 2 cores)")


QUICK = {"max_n": 32, "prompts": 12}
LARGEST = {"labels": 1000, "max_n": 256, "prompts": 16}


def kl_best_of_n(n: int) -> float:
    return math.log(n) - (n - 1) / n


def expected_best(proxy: list[float], gold: list[float], n: int) -> tuple[float, float]:
    """E[proxy, gold of the proxy-argmax] over all n-subsets of the N samples: the sample of proxy
    rank i (1 = lowest) is the subset's best with probability C(i-1, n-1) / C(N, n)."""
    N = len(proxy)
    order = sorted(range(N), key=lambda i: proxy[i])
    total = math.comb(N, n)
    ep = eg = 0.0
    for rank, idx in enumerate(order, start=1):
        if rank < n:
            continue
        w = math.comb(rank - 1, n - 1) / total
        ep += w * proxy[idx]
        eg += w * gold[idx]
    return ep, eg


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the base policy and the gold judge")
    from ..prompts import prompt_texts

    s = imdb.setup(cfg.threads, cfg.seed)
    base, tok, gold, train_reviews = s.base, s.tok, s.gold, s.train_reviews
    p(0.15, f"proxy: reward model on {cfg.labels} gold labels")
    proxy = imdb.gold_trained_proxy(train_reviews, cfg.labels, tok, gold, cfg.seed, epochs=1.5)

    p(0.3, f"sample: {cfg.max_n} completions for each of {cfg.prompts} held-out prompts")
    prompts = prompt_texts(tok, 8, "eval")[:cfg.prompts]
    groups = imdb.sample(base, tok, prompts, cfg.max_n, 24, cfg.seed + 3)
    p(0.7, "score: proxy and gold on every completion")
    flat = [c for g in groups for c in g]
    proxy_scores = imdb.batched(proxy, flat)
    gold_scores = imdb.batched(gold, flat)

    ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n <= cfg.max_n]
    per_prompt = {"proxy": [[round(x, 4) for x in proxy_scores[j * cfg.max_n:(j + 1) * cfg.max_n]]
                            for j in range(len(prompts))],
                  "gold": [[round(x, 4) for x in gold_scores[j * cfg.max_n:(j + 1) * cfg.max_n]]
                           for j in range(len(prompts))]}
    result = {"lab": NAME, "config": cfg.model_dump(), "n": ns,
              "sqrt_kl": [math.sqrt(kl_best_of_n(n)) for n in ns], "scores": per_prompt,
              "proxy_std": statistics.pstdev(proxy_scores), "gold_std": statistics.pstdev(gold_scores)}
    result.update(curves(result))
    p(1.0, "done")
    return {**result, "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def per_prompt_curves(result: dict) -> tuple[list[list[float]], list[list[float]]]:
    """[prompt][n] expected proxy and gold score of the proxy's best of n, from the raw scores."""
    proxy_rows, gold_rows = [], []
    for proxy, gold in zip(result["scores"]["proxy"], result["scores"]["gold"]):
        pairs = [expected_best(proxy, gold, n) for n in result["n"]]
        proxy_rows.append([p for p, _ in pairs])
        gold_rows.append([g for _, g in pairs])
    return proxy_rows, gold_rows


def curves(result: dict) -> dict:
    """Mean curves over prompts and the least-squares fit of Gao's best-of-n form to the gold gain."""
    proxy_rows, gold_rows = per_prompt_curves(result)
    proxy_curve = [statistics.fmean(col) for col in zip(*proxy_rows)]
    gold_curve = [statistics.fmean(col) for col in zip(*gold_rows)]
    sqrt_kl = result["sqrt_kl"]
    gain = [g - gold_curve[0] for g in gold_curve]
    alpha, minus_beta = fit_two_terms(sqrt_kl[1:], gain[1:], lambda d: d, lambda d: d * d)
    fit = {"alpha": alpha, "beta": -minus_beta,
           "r2": r_squared(gain[1:], [d * (alpha + minus_beta * d) for d in sqrt_kl[1:]])}
    return {"proxy": proxy_curve, "gold": gold_curve, "fit_gold": fit}


def gold_bend(result: dict) -> dict:
    """Where the gold curve of the proxy's best-of-n peaks, and its fall from there to the largest n,
    paired over prompts with a 95 % interval."""
    _, gold_rows = per_prompt_curves(result)
    mean = [statistics.fmean(col) for col in zip(*gold_rows)]
    top = max(range(len(mean)), key=mean.__getitem__)
    fall = paired_ci([row[top] for row in gold_rows], [row[-1] for row in gold_rows])
    return {"peak_n": result["n"][top], "peak_index": top, "fall": fall, "beta": curves(result)["fit_gold"]["beta"]}


def _gold_bends_over(result: dict) -> str | None:
    bend = gold_bend(result)
    fall, last = bend["fall"], result["n"][-1]
    if bend["peak_index"] < len(result["n"]) - 1 and fall["low"] > 0 and bend["beta"] > 0:
        return None
    if bend["peak_index"] == len(result["n"]) - 1:
        return f"the gold reward was still highest at the largest n = {last} (fitted β = {bend['beta']:.2f})"
    return (f"the gold reward peaked at n = {bend['peak_n']} and fell by {fall['mean']:.3f} by n = {last}, 95 % "
            f"interval [{fall['low']:+.3f}, {fall['high']:+.3f}] over {fall['n']} prompts; fitted β = "
            f"{bend['beta']:.2f} (a bend needs the fall above 0 and β > 0)")


NOT_CHECKS = [
    "the proxy's expected best-of-n never falls as n grows: a property of the expected-maximum estimator;",
    "the proxy gains more of its own spread than the gold judge does: true of almost any imperfect proxy.",
]
CHECKS = [
    Check("gold_bends_over", "Best-of-n against a proxy first raises the gold reward, then lowers it: the gold "
          "curve peaks before the largest n, falls from there (paired 95 % interval above 0), and the "
          "least-squares fit of d(α − βd) has β > 0.",
          "Gao et al. 2022, Fig. 1a and Sec. 3.1 (best-of-n)",
          "A proxy good enough over the n reached, or the judge itself, never turns the gold curve down; test: "
          "the proxy's scores replaced by the gold judge's.",
          _gold_bends_over),
]


def headline(result: dict) -> str:
    bend = gold_bend(result)
    return (f"gold peaks at n = {bend['peak_n']} of {result['n'][-1]}, falls {bend['fall']['mean']:+.3f} by "
            f"n = {result['n'][-1]}; fitted β = {bend['beta']:.2f}")
