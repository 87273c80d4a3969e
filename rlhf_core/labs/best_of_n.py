"""T3c lab `best_of_n`: best-of-n sampling against a proxy reward model (Gao et al. 2022).

Paper claim (Sun 2023, takeaway 3): the reward model is a proxy; any optimiser that leans on it,
even simple rejection sampling, can trade true reward for proxy reward as it moves away from the
initial policy. Best-of-n draws n completions and keeps the one the proxy likes best. Its KL from the
initial policy has a closed form, KL_bon = log n - (n-1)/n, and Gao's fit for the gold gain is
R(d) = d (alpha - beta d) with d = sqrt(KL_bon).

What the literature predicts, registered before the evidence run: with clean labels Coste et al.
2023 saw no best-of-n over-optimisation up to n = 12,500 and added 25 % label noise to see it; Gao
§4.2.1 shows that a proxy equal to the gold plus independent noise never bends. What bends it is
error concentrated at the top of the proxy's range: a blind spot.

Setup: one pool of `pool` completions per held-out prompt from the base policy `imdb-tiny`
(temperature 1, no top-k/top-p, EOS allowed). The judge is gold′ (`gold-prime-rm`, which sees
degenerate text; see the overoptimization lab). Every n ≤ pool comes from that one pool with the
unbiased estimator (Nakano et al. 2021 App. I; Coste et al. App. B): the sample of proxy rank i is
the best of a random n-subset with probability C(i-1, n-1) / C(N, n). Arms, each a proxy trained on
`labels` pairs of two base-policy completions to one prompt (Gao's protocol):
- `clean` (null): labelled by gold′; no bend expected (Coste);
- `flip25`, `flip35` (effect): the same pairs with 25 % / 35 % of the labels flipped (Coste App. E, F.6);
- `blind` (effect): the same pairs labelled by `gold-rm`, a judge of sentiment alone, blind to the
  degeneracy gold′ sees;
- `control`: ranking by gold′ itself (its expected best-of-n gold′ never falls: a property of the
  estimator, so it is drawn, not checked).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

from ..config import ConfigError
from .support import imdb
from .support.common import (LabConfig, Progress, fit_two_terms, fork_map, knob, lab_workers, paired_ci, r_squared,
                             rounded)
from .support.verdict import Check

NAME = "best_of_n"
JUDGE = "gold-prime-rm"
SE_MARGIN = 2.0  # a bend: gold′ falls from its peak by more than this many standard errors over prompts
PEAK_BY = 64  # ... and the peak comes at n <= 64 (KL <= 3.2 nats), literature note §2.3


@dataclass(frozen=True)
class Arm:
    name: str
    role: str
    expect: str
    flip: float = 0.0
    labeller: str = JUDGE  # whose labels the proxy learns; "" for the control (no proxy)


def arms(cfg: "Config") -> list[Arm]:
    out = [Arm("clean", "null", "no significant bend: clean labels do not bend best-of-n at this n (Coste et al.)")]
    out += [Arm(f"flip{round(f * 100)}", "effect", f"gold′ peaks by n = {PEAK_BY} and falls more than "
                f"{SE_MARGIN:g} SE by n = {cfg.pool} (Coste et al. needed label noise)", flip=f) for f in cfg.flips]
    out.append(Arm("blind", "effect", f"gold′ peaks by n = {PEAK_BY} and falls more than {SE_MARGIN:g} SE: the proxy "
                   "rewards what gold′ penalises (extremal Goodhart, Gao §4.2)", labeller="gold-rm"))
    out.append(Arm("control", "control", "ranking by gold′ itself: never falls (by construction of the estimator)",
                   labeller=""))
    return out


class Config(LabConfig):
    labels: int = knob(300, "Labelled pairs of base-policy completions each proxy learns.", lo=10, hi=2000)
    flips: list[float] = knob([0.25, 0.35], "Shares of flipped labels, one noisy arm each.", lo=0.0, hi=0.45)
    pool: int = knob(128, "Completions per prompt in the pool; the largest n.", lo=16, hi=512)
    prompts: int = knob(12, "Held-out prompts.", lo=2, hi=64)
    response_length: int = knob(24, "Most tokens per completion (EOS may end one sooner).", lo=8, hi=48)
    seed: int = knob(0, "Seed for labels, training and sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        if self.pool * self.prompts > 8192:
            raise ConfigError(f"pool: pool x prompts = {self.pool * self.prompts} completions is over the lab's "
                              "budget of 8,192 (about a minute on 2 cores)")


# The defaults are the interactive run (one seed within a minute on 2 cores): every arm and check of
# the registered design, on fewer labels and a smaller pool. The registered design itself runs at
# these settings (`lab best_of_n --evidence`), on 5 seeds in scripts/lab_evidence.py.
EVIDENCE = {"labels": 1000, "pool": 256, "prompts": 16}
QUICK = {"labels": 100, "pool": 64, "prompts": 12}
LARGEST = {"labels": 2000, "pool": 512, "prompts": 16}


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


_SHARED: dict = {}  # models and data made once, inherited by the forked workers


def _sample_half(half: int, cfg: Config) -> list[list[str]]:
    """The pool for one half of the prompts (each half its own seed: two processes, one result)."""
    s = _SHARED
    prompts = s["prompts"][half::2]
    return imdb.sample(s["base"], s["tok"], prompts, cfg.pool, cfg.response_length, cfg.seed + 3 + half)


def _arm_scores(name: str, cfg: Config) -> dict:
    """One arm's proxy (trained on the shared pairs as this arm labels them) scoring the whole pool."""
    s = _SHARED
    a = next(x for x in arms(cfg) if x.name == name)
    if not a.labeller:
        return {"scores": s["gold_scores"], "accuracy": None}
    pairs = imdb.policy_pairs(s["base"], s["tok"], [], cfg.labels, s["judges"][a.labeller], cfg.seed + 7, flip=a.flip,
                              groups=s["pair_groups"])
    proxy = imdb.proxy_from_pairs(pairs, s["tok"], cfg.seed, epochs=2.0)
    return {"scores": imdb.batched(proxy, s["flat"]), "accuracy": imdb.pair_accuracy(proxy, s["held_pairs"])}


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the base policy and the judges")
    from ..prompts import prompt_texts

    s = imdb.setup(cfg.threads, cfg.seed)
    judge = imdb.gold_scorer(JUDGE)
    prompts = prompt_texts(s.tok, 8, "eval")[:cfg.prompts]
    _SHARED.update(base=s.base, tok=s.tok, judges={JUDGE: judge, "gold-rm": s.gold}, prompts=prompts,
                   held_pairs=imdb.policy_pairs(s.base, s.tok, prompt_texts(s.tok, 8, "eval")[-200:], 200, judge,
                                                cfg.seed + 99),
                   # the same pairs for every proxy: only the labeller and the flips differ between arms
                   pair_groups=imdb.sample_pairs(s.base, s.tok, prompt_texts(s.tok, 8, "train"), cfg.labels,
                                                 cfg.seed + 7, cfg.response_length))
    workers = lab_workers()
    p(0.1, f"sample: {cfg.pool} completions for each of {cfg.prompts} held-out prompts")
    halves = fork_map(functools.partial(_sample_half, cfg=cfg), [0, 1], workers)
    groups = [None] * len(prompts)
    for half, chunk in halves.items():
        groups[half::2] = chunk
    flat = [c for g in groups for c in g]
    _SHARED.update(flat=flat, gold_scores=imdb.batched(judge, flat))
    names = [a.name for a in arms(cfg)]
    p(0.4, f"proxies: {len(names) - 1} reward models on {cfg.labels} pairs each, on {workers} process(es)")
    by_name = fork_map(functools.partial(_arm_scores, cfg=cfg), names, workers,
                       lambda n, done: p(0.4 + 0.55 * done / len(names), f"proxies: {done}/{len(names)} ({n})"))
    gold_scores = _SHARED["gold_scores"]

    def per_prompt(scores: list[float]) -> list[list[float]]:
        return [rounded(scores[j * cfg.pool:(j + 1) * cfg.pool]) for j in range(len(prompts))]

    out_arms = []
    for a in arms(cfg):
        got = by_name[a.name]
        out_arms.append({"name": a.name, "role": a.role, "flip": a.flip, "labeller": a.labeller,
                         "held_out_accuracy": None if got["accuracy"] is None else round(got["accuracy"], 4),
                         "proxy": per_prompt(got["scores"])})
    ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if n <= cfg.pool]
    result = {"lab": NAME, "config": cfg.model_dump(), "n": ns, "judge": JUDGE,
              "sqrt_kl": [math.sqrt(kl_best_of_n(n)) for n in ns], "gold": per_prompt(gold_scores),
              "arms": out_arms, "mean_length_tokens": statistics.fmean(len(s.tok(c)["input_ids"]) for c in flat),
              "workers": workers}
    for a in out_arms:
        a.update(curves(result, a))
    _SHARED.clear()
    p(1.0, "done")
    return {**result, "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def arm(result: dict, name: str) -> dict | None:
    return next((a for a in result["arms"] if a["name"] == name), None)


def per_prompt_curves(result: dict, a: dict) -> tuple[list[list[float]], list[list[float]]]:
    """[prompt][n] expected proxy and gold′ score of the arm's best of n, from the raw scores."""
    proxy_rows, gold_rows = [], []
    for proxy, gold in zip(a["proxy"], result["gold"]):
        pairs = [expected_best(proxy, gold, n) for n in result["n"]]
        proxy_rows.append([x for x, _ in pairs])
        gold_rows.append([g for _, g in pairs])
    return proxy_rows, gold_rows


def curves(result: dict, a: dict) -> dict:
    """Mean curves over prompts and the least-squares fit of Gao's best-of-n form to the gold gain."""
    proxy_rows, gold_rows = per_prompt_curves(result, a)
    proxy_curve = [statistics.fmean(col) for col in zip(*proxy_rows)]
    gold_curve = [statistics.fmean(col) for col in zip(*gold_rows)]
    sqrt_kl = result["sqrt_kl"]
    gain = [g - gold_curve[0] for g in gold_curve]
    alpha, minus_beta = fit_two_terms(sqrt_kl[1:], gain[1:], lambda d: d, lambda d: d * d)
    fit = {"alpha": alpha, "beta": -minus_beta,
           "r2": r_squared(gain[1:], [d * (alpha + minus_beta * d) for d in sqrt_kl[1:]])}
    return {"proxy_curve": proxy_curve, "gold_curve": gold_curve, "fit_gold": fit}


def gold_bend(result: dict, a: dict) -> dict:
    """Where the gold′ curve of the arm's best-of-n peaks, and its fall from there to the largest n,
    paired over prompts (mean, SE and 95 % interval)."""
    _, gold_rows = per_prompt_curves(result, a)
    mean = [statistics.fmean(col) for col in zip(*gold_rows)]
    top = max(range(len(mean)), key=mean.__getitem__)
    fall = paired_ci([row[top] for row in gold_rows], [row[-1] for row in gold_rows])
    diffs = [row[top] - row[-1] for row in gold_rows]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return {"peak_n": result["n"][top], "peak_index": top, "fall": fall, "se": se}


def bends(result: dict, a: dict) -> bool:
    b = gold_bend(result, a)
    return b["peak_index"] < len(result["n"]) - 1 and b["peak_n"] <= PEAK_BY and b["fall"]["mean"] > SE_MARGIN * b["se"]


def _describe(result: dict, a: dict) -> str:
    b = gold_bend(result, a)
    return (f"{a['name']}: gold′ peaked at n = {b['peak_n']} and fell {b['fall']['mean']:+.3f} (SE {b['se']:.3f}) "
            f"by n = {result['n'][-1]}")


def _bends(name: str):
    def test(result: dict) -> str | None:
        a = arm(result, name)
        if a is None:
            return f"needs the arm {name}"
        if bends(result, a):
            return None
        return _describe(result, a) + f" (a bend needs a peak by n = {PEAK_BY} and a fall above {SE_MARGIN:g} SE)"
    test.__name__ = f"_{name}_bends"
    return test


def _clean_no_bend(result: dict) -> str | None:
    a = arm(result, "clean")
    return _describe(result, a) + ": the clean proxy bent" if bends(result, a) else None


NOT_CHECKS = [
    "a proxy's expected best-of-n of its own score never falls as n grows: a property of the expected-maximum "
    "estimator;",
    "so the control (ranking by gold′ itself) never falls either: it is drawn as the ceiling, not checked.",
]
COSTE = "Coste et al. 2023, Sec. 5.1 and App. E (25 % label noise), App. F.6 (35 %)"
CHECKS = [
    Check("clean_proxy_no_bend", f"Null: best-of-n against the clean proxy does not bend gold′ (no peak by n = "
          f"{PEAK_BY} followed by a fall above {SE_MARGIN:g} SE over prompts).",
          "Coste et al. 2023, App. E: no best-of-n over-optimisation with clean labels up to n = 12,500",
          "A clean proxy with a blind spot at the top of its range would bend; test: the clean arm's proxy scores "
          "replaced by the negated gold′ scores (ranking the worst first).", _clean_no_bend),
    *[Check(f"flip{pct}_bends", f"With {pct} % of its labels flipped, the proxy's best-of-n bends gold′: a peak by "
            f"n = {PEAK_BY}, then a fall above {SE_MARGIN:g} SE (paired over prompts) by the largest n.", COSTE,
            "Noise that only weakens an unbiased proxy should not bend gold (Gao §4.2.1); test: the arm's proxy scores "
            "replaced by gold′'s own.", _bends(f"flip{pct}")) for pct in (25, 35)],
    Check("blind_bends", f"A proxy blind to what gold′ sees (labelled by the sentiment-only gold-rm) bends gold′: a "
          f"peak by n = {PEAK_BY}, then a fall above {SE_MARGIN:g} SE by the largest n.",
          "Gao et al. 2022, Sec. 4.2 (extremal Goodhart); Singhal et al. 2023 (spurious reward-model features)",
          "If the pool's top-ranked samples were not degenerate, the blind proxy would not bend; test: its proxy "
          "scores replaced by gold′'s own.", _bends("blind")),
]


def design(cfg: Config) -> dict:
    return {"arms": [{"name": a.name, "role": a.role, "expect": a.expect} for a in arms(cfg)], "judge": JUDGE,
            "max_n": cfg.pool}


def headline(result: dict) -> str:
    parts = []
    for a in result["arms"]:
        b = gold_bend(result, a)
        parts.append(f"{a['name']}: peak n = {b['peak_n']}, fall {b['fall']['mean']:+.2f} (SE {b['se']:.2f})")
    return "; ".join(parts) + f" (n ≤ {result['n'][-1]})"
