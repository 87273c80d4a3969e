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

import dataclasses
import math
import statistics
from dataclasses import dataclass

from . import imdb
from .common import Progress, fit_two_terms, knob, r_squared

NAME = "best_of_n"
VERSION = 1


@dataclass
class Config:
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
    proxy_curve, gold_curve = [], []
    for n in ns:
        ps, gs = [], []
        for j in range(len(prompts)):
            sl = slice(j * cfg.max_n, (j + 1) * cfg.max_n)
            ep, eg = expected_best(proxy_scores[sl], gold_scores[sl], n)
            ps.append(ep)
            gs.append(eg)
        proxy_curve.append(statistics.fmean(ps))
        gold_curve.append(statistics.fmean(gs))
    sqrt_kl = [math.sqrt(kl_best_of_n(n)) for n in ns]
    gain = [g - gold_curve[0] for g in gold_curve]
    alpha, minus_beta = fit_two_terms(sqrt_kl[1:], gain[1:], lambda d: d, lambda d: d * d)
    fit = {"alpha": alpha, "beta": -minus_beta,
           "r2": r_squared(gain[1:], [d * (alpha + minus_beta * d) for d in sqrt_kl[1:]])}
    p(1.0, "done")
    return {"lab": NAME, "config": dataclasses.asdict(cfg), "n": ns, "sqrt_kl": sqrt_kl,
            "proxy": proxy_curve, "gold": gold_curve, "fit_gold": fit,
            "proxy_std": statistics.pstdev(proxy_scores), "gold_std": statistics.pstdev(gold_scores),
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def shape_problems(result: dict) -> list[str]:
    """Gao et al.: the proxy's expected best rises with n; the gold reward, in units of each
    reward's spread, gains less than the proxy (the proxy-gold gap opens as d grows). Whether the
    gold curve bends over within reach (fitted beta > 0) depends on the proxy and on n; it is
    reported, not required: with 64 samples d stops at 1.78."""
    problems = []
    proxy, gold = result["proxy"], result["gold"]
    if not all(b >= a - 1e-9 for a, b in zip(proxy, proxy[1:])):
        problems.append("the proxy reward of the best of n should not fall as n grows")
    proxy_gain = (proxy[-1] - proxy[0]) / (result["proxy_std"] or 1.0)
    gold_gain = (gold[-1] - gold[0]) / (result["gold_std"] or 1.0)
    if not proxy_gain > gold_gain:
        problems.append(f"the gold gain should lag the proxy gain (in standard deviations): gold {gold_gain:.2f} "
                        f"vs proxy {proxy_gain:.2f}")
    return problems
