"""T3b lab `overoptimization`: push a proxy reward model too hard and the true reward falls
(Gao, Schulman & Hilton 2022, "Scaling laws for reward model overoptimization").

Paper claim (Sun 2023, takeaway 3): the reward model is only a cheap proxy of expensive feedback,
and optimising it too hard moves the policy where the proxy is wrong.

Why the judge is gold′ (`gold-prime-rm`): a gold judge falls only when the proxy is wrong *where the
optimiser goes* ("extremal Goodhart", Gao §4.2). A judge of the same size and kind as the proxies,
trained on the same kind of review pairs, shares their blind spots (Gao §4.5 names this limit), and
an earlier version of this lab saw no fall with one. gold′ learnt the gold half of the reviews plus
(natural ≻ corrupted) pairs: repetition, shuffled words, runaway length. So it scores degenerate text
low. The proxies follow Gao's protocol: pairs of two completions of the *initial policy* to one
prompt, labelled by gold′. The initial policy rarely degenerates, so those pairs almost never contrast
on degeneracy and the proxies cannot learn it. That blind spot is built in on purpose, and the page
says so (as Moskovitz et al. 2023 disclose their choice of evaluation metric).

Arms (each one GRPO run from the base policy `imdb-tiny`, β = 0 as in Gao, the learning rate climbing
geometrically from `lr_start` to `lr_end`, so KL rises slowly first and then travels far):
- `proxy50`, `proxy300`, `proxy2000` (effect): proxies from 50, 300 and 2,000 gold′ labels (the
  evidence settings; the lighter interactive defaults train on 50 and 300);
- `proxy50_flip25` (effect): 50 labels, 25 % of them flipped (Coste et al. 2023);
- `correlated` (null): the earlier design's proxy, 50 gold-rm labels of review endings, judged by the
  correlated judge `gold-rm` (a model of the proxies' own kind): no fall expected (Gao §4.5);
- `control` (control): GRPO on gold′ itself, which must not fall; if it does, gold′ is hackable.

Evaluation at a geometric schedule of steps (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ...), on fixed
held-out prompts, one fresh sample each: the judge's and the proxy's mean score, and KL(policy ‖
initial) per completion (Monte-Carlo over the sampled tokens), d = √KL.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

from ..config import ConfigError
from .support import imdb
from .support.common import LabConfig, Progress, fit_two_terms, fork_map, knob, lab_workers, rounded
from .support.verdict import Check

NAME = "overoptimization"
JUDGE = "gold-prime-rm"
CORRELATED_JUDGE = "gold-rm"
EVAL_STEPS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)  # about geometric, then every few
# steps at the far end, where KL grows fastest (about quadratically in steps) and a peak must be resolved
SE_MARGIN = 2.0  # "falls" and "rises" mean by more than this many standard errors over the eval prompts


@dataclass(frozen=True)
class Arm:
    name: str
    role: str  # effect / null / control
    expect: str
    labels: int = 0  # gold′ labels of policy-sample pairs (0: no proxy)
    flip: float = 0.0
    correlated: bool = False
    control: bool = False


def arms(cfg: "Config") -> list[Arm]:
    fewest = min(cfg.labels)
    out = [Arm(f"proxy{n}", "effect", (f"gold′ rises, peaks and then falls by more than {SE_MARGIN:g} SE while the "
                                       "proxy keeps rising" if n == fewest else
                                       f"peaks later (at a larger KL) than proxy{fewest}, or does not fall")
               if n in (fewest, max(cfg.labels)) else "descriptive: between the two", labels=n)
           for n in cfg.labels]
    if cfg.flip:
        out.append(Arm(f"proxy{fewest}_flip{round(cfg.flip * 100)}", "effect",
                       "gold′ peaks and falls while the proxy rises (Coste et al. 2023 needed label noise)",
                       labels=fewest, flip=cfg.flip))
    if cfg.correlated:
        out.append(Arm("correlated", "null", f"its judge {CORRELATED_JUDGE}, of the proxy's own kind, does not fall "
                       "(Gao §4.5: correlated reward models)", labels=fewest, correlated=True))
    if cfg.control:
        out.append(Arm("control", "control", "optimising gold′ itself, gold′ does not fall (else gold′ is hackable)",
                       control=True))
    return out


class Config(LabConfig):
    labels: list[int] = knob([50, 300], "Gold′ labels each proxy is trained on (pairs of the initial "
                             "policy's completions).", lo=10, hi=2000)
    flip: float = knob(0.25, "Share of flipped labels in the noisy arm (at the fewest labels); 0 drops the arm.",
                       lo=0.0, hi=0.45)
    correlated: bool = knob(True, "Run the correlated-judge arm (the earlier design: a gold-rm-labelled proxy "
                            "judged by gold-rm).", advanced=True)
    control: bool = knob(True, "Run the control arm (GRPO on gold′ itself).", advanced=True)
    rl_steps: int = knob(16, "GRPO steps per arm (16 completions each), β = 0.", lo=8, hi=64)
    lr_start: float = knob(3e-4, "Learning rate at the first step ...", lo=1e-6, hi=3e-3)
    lr_end: float = knob(3e-3, "... climbing geometrically to this at the last step (far enough to reach KL 100).",
                         lo=1e-6, hi=3e-3)
    eval_prompts: int = knob(16, "Held-out prompts at each evaluation (one sample each).", lo=16, hi=128,
                             advanced=True)
    held_out_pairs: int = knob(100, "Fresh gold′-labelled pairs of the initial policy's completions, on prompts "
                               "the proxies never saw, for each proxy's held-out accuracy.", lo=50, hi=400,
                               advanced=True)
    seed: int = knob(0, "Seed for labels, training and sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        self.labels = sorted(set(self.labels))
        if len(arms(self)) * self.rl_steps > 200:
            raise ConfigError(f"rl_steps: {len(arms(self))} arms x {self.rl_steps} steps is over the lab's budget "
                              "of 200 GRPO steps (about three minutes on a slow 2-core box)")


# The defaults are the interactive run (one seed within a minute on 2 cores): every kind of arm and
# every check of the registered design, on fewer labels, steps and eval prompts (no 2,000-label proxy). The registered design itself runs
# at these settings (`lab overoptimization --evidence`), on 5 seeds in scripts/lab_evidence.py.
EVIDENCE = {"labels": [50, 300, 2000], "rl_steps": 32, "lr_start": 1e-4, "eval_prompts": 64, "held_out_pairs": 200}
QUICK = {"labels": [50, 300], "rl_steps": 12, "eval_prompts": 32}
LARGEST = {"labels": [50, 300, 2000], "rl_steps": 32, "eval_prompts": 128}


def eval_steps(cfg: Config) -> list[int]:
    return [s for s in EVAL_STEPS if s < cfg.rl_steps] + [cfg.rl_steps]


def lr_at(cfg: Config, step: int) -> float:
    """The geometric climb from lr_start (step 0) to lr_end (the last step)."""
    frac = step / max(1, cfg.rl_steps - 1)
    return cfg.lr_start * (cfg.lr_end / cfg.lr_start) ** frac


def gao_rl_fit(d: list[float], gain: list[float]) -> dict:
    """Least squares for gain = d (alpha - beta log d), at d > 0 (descriptive, not a check)."""
    pts = [(x, y) for x, y in zip(d, gain) if x > 1e-6]
    if len(pts) < 3:
        return {"alpha": None, "beta": None}
    alpha, minus_beta = fit_two_terms([x for x, _ in pts], [y for _, y in pts], lambda x: x, lambda x: x * math.log(x))
    return {"alpha": alpha, "beta": -minus_beta}


_SHARED: dict = {}  # models and data loaded once, inherited by forked workers


def _reward_for(arm: Arm, cfg: Config):
    """(the function GRPO optimises, its name, the judge of this arm, the proxy's held-out accuracy)."""
    s = _SHARED
    if arm.control:
        return s["gold_prime"], "gold-prime", s["gold_prime"], None
    if arm.correlated:
        proxy = imdb.gold_trained_proxy(s["train_reviews"], arm.labels, s["tok"], s["gold"], cfg.seed)
        return proxy, "correlated-proxy", s["gold"], imdb.pair_accuracy(proxy, s["held_gold"])
    pairs = imdb.policy_pairs(s["base"], s["tok"], s["train_prompts"], arm.labels, s["gold_prime"], cfg.seed + 7,
                              flip=arm.flip)
    proxy = imdb.proxy_from_pairs(pairs, s["tok"], cfg.seed)
    return proxy, arm.name, s["gold_prime"], imdb.pair_accuracy(proxy, s["held_pairs"])


def _run_arm(name: str, cfg: Config) -> dict:
    """One arm: its proxy, then GRPO against it with evaluations on the schedule. Seeded from the
    config alone, so the result does not depend on which process runs it."""
    import torch

    arm = next(a for a in arms(cfg) if a.name == name)
    s = _SHARED
    reward, reward_name, judge, accuracy = _reward_for(arm, cfg)
    series: dict = {"step": [], "kl": [], "proxy": [], "gold": [], "gold_per_prompt": [], "gold_prime": []}

    def evaluate(step: int, policy) -> None:
        with torch.random.fork_rng():  # evaluation must not shift the training's random stream
            comps = [g[0] for g in imdb.sample(policy, s["tok"], s["eval_prompts"], 1, 24, cfg.seed + 1000 + step)]
            kl = imdb.sequence_kl(policy, s["base"], s["tok"], s["eval_prompts"], comps)
        policy.train()
        judged = imdb.batched(judge, comps)
        series["step"].append(step)
        series["kl"].append(statistics.fmean(kl))
        series["proxy"].append(statistics.fmean(imdb.batched(reward, comps)))
        series["gold"].append(statistics.fmean(judged))
        series["gold_per_prompt"].append(rounded(judged))
        if arm.correlated:  # what gold′ says of the same samples (descriptive)
            series["gold_prime"].append(statistics.fmean(imdb.batched(s["gold_prime"], comps)))

    imdb.train_grpo(imdb.fresh_copy(s["base"]), s["tok"], reward, reward_name, steps=cfg.rl_steps, kl_coef=0.0,
                    learning_rate=cfg.lr_start, seed=cfg.seed, prompts=s["train_prompts"],
                    lr_at=functools.partial(lr_at, cfg), on_eval=(set(eval_steps(cfg)), evaluate))
    sqrt_kl = [math.sqrt(max(0.0, k)) for k in series["kl"]]
    out = {"name": arm.name, "role": arm.role, "labels": arm.labels, "flip": arm.flip,
           "judge": CORRELATED_JUDGE if arm.correlated else JUDGE,
           "proxy_accuracy": None if accuracy is None else round(accuracy, 4),
           **{k: (rounded(v) if k != "gold_per_prompt" else v) for k, v in series.items() if v},
           "sqrt_kl": rounded(sqrt_kl),
           "fit_gold": gao_rl_fit(sqrt_kl, [g - series["gold"][0] for g in series["gold"]])}
    return out


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the base policy and the judges")
    from ..prompts import prompt_texts

    s = imdb.setup(cfg.threads, cfg.seed)
    gold_prime = imdb.gold_scorer(JUDGE)
    train_prompts = prompt_texts(s.tok, 8, "train")
    _SHARED.update(base=s.base, tok=s.tok, gold=s.gold, gold_prime=gold_prime, train_reviews=s.train_reviews,
                   train_prompts=train_prompts, eval_prompts=prompt_texts(s.tok, 8, "eval")[:cfg.eval_prompts],
                   held_gold=imdb.gold_labelled_pairs(s.held_reviews, 40, s.tok, s.gold, cfg.seed + 1))
    # held-out proxy accuracy: fresh policy-sample pairs on prompts the proxies never saw, labelled by gold′
    _SHARED["held_pairs"] = imdb.policy_pairs(s.base, s.tok, prompt_texts(s.tok, 8, "eval")[-cfg.held_out_pairs:],
                                              cfg.held_out_pairs, gold_prime,
                                              cfg.seed + 99)
    names = [a.name for a in arms(cfg)]
    workers = min(lab_workers(), len(names))
    p(0.05, f"arms: {len(names)} GRPO runs of {cfg.rl_steps} steps on {workers} process(es)")
    by_name = fork_map(functools.partial(_run_arm, cfg=cfg), names, workers,
                       lambda n, done: p(0.05 + 0.9 * done / len(names), f"arms: {done}/{len(names)} done ({n})"))
    _SHARED.clear()
    p(1.0, "done")
    return {"lab": NAME, "config": cfg.model_dump(), "arms": [by_name[n] for n in names], "workers": workers,
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


# ---- the checks: registered before the evidence run (docs/lab-evidence.json `design.registered_at`) ----

def arm(result: dict, name: str) -> dict | None:
    return next((a for a in result["arms"] if a["name"] == name), None)


def _fewest(result: dict) -> int:
    return min(result["config"]["labels"])


def _diff(run: dict, i: int, j: int) -> tuple[float, float]:
    """Mean and standard error over the eval prompts of judge(eval i) - judge(eval j), paired by prompt."""
    d = [a - b for a, b in zip(run["gold_per_prompt"][i], run["gold_per_prompt"][j])]
    return statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))


def peak(run: dict) -> dict:
    """Where the judge's mean peaks, and how far it has fallen by the last evaluation (with the SE)."""
    i = max(range(len(run["gold"])), key=run["gold"].__getitem__)
    fall, se = _diff(run, i, -1)
    return {"index": i, "step": run["step"][i], "kl": run["kl"][i], "sqrt_kl": run["sqrt_kl"][i], "gold": run["gold"][i],
            "fall": fall, "se": se, "final_kl": run["kl"][-1]}


def falls(run: dict) -> bool:
    """The judge peaked before the end and fell from there by more than SE_MARGIN standard errors."""
    pk = peak(run)
    return pk["index"] < len(run["gold"]) - 1 and pk["fall"] > SE_MARGIN * pk["se"]


def _describe_fall(run: dict) -> str:
    pk = peak(run)
    return (f"{run['name']}: {run['judge']} peaked at step {pk['step']} (KL {pk['kl']:.1f}) and fell "
            f"{pk['fall']:+.2f} (SE {pk['se']:.2f}) by step {run['step'][-1]} (KL {pk['final_kl']:.1f})")


def _proxy_rises(result: dict) -> str | None:
    seen = [f"{a['name']}: proxy {a['proxy'][0]:.2f} -> {a['proxy'][-1]:.2f}" for a in result["arms"]
            if a["role"] == "effect" and not a["proxy"][-1] > a["proxy"][0]]
    return "; ".join(seen) or None


def _gold_rises_first(result: dict) -> str | None:
    run = arm(result, f"proxy{_fewest(result)}")
    early = [i for i, s in enumerate(run["step"]) if 0 < s <= 8]
    gains = [_diff(run, i, 0) for i in early]
    if any(g > SE_MARGIN * se for g, se in gains):
        return None
    best = max(gains, key=lambda x: x[0]) if gains else (0.0, 0.0)
    return (f"{run['name']}: gold′ never rose {SE_MARGIN:g} SE above the start within 8 steps (best "
            f"{best[0]:+.2f}, SE {best[1]:.2f}): the proxy does not carry the judge's signal")


def _falls_while_proxy_rises(name_of):
    def test(result: dict) -> str | None:
        run = arm(result, name_of(result))
        if run is None:
            return f"needs the arm {name_of(result)}"
        pk = peak(run)
        if falls(run) and run["proxy"][-1] > run["proxy"][pk["index"]]:
            return None
        why = _describe_fall(run)
        if falls(run):
            why += f", but the proxy fell too ({run['proxy'][pk['index']]:.2f} -> {run['proxy'][-1]:.2f})"
        return why + f" (a fall needs more than {SE_MARGIN:g} SE while the proxy rises)"
    return test


def _more_labels_peak_later(result: dict) -> str | None:
    small, large = arm(result, f"proxy{_fewest(result)}"), arm(result, f"proxy{max(result['config']['labels'])}")
    if small is large:
        return "needs two label budgets"
    if not falls(large) or peak(large)["kl"] > peak(small)["kl"]:
        return None
    return f"{_describe_fall(large)}; {_describe_fall(small)}: the larger proxy fell from a peak no later"


def _holds(name: str):
    def test(result: dict) -> str | None:
        run = arm(result, name)
        if run is None:
            return f"needs the arm {name}"
        return None if not falls(run) else _describe_fall(run)
    return test


GAO = "Gao et al. 2022, Fig. 1b, Sec. 3 and 4.2 (extremal Goodhart)"
CHECKS = [
    Check("proxy_rises", "Under RL every effect arm's proxy score is higher at the last evaluation than at the first.",
          GAO, "RL that does not learn leaves the proxies flat; test: each proxy series reversed.", _proxy_rises),
    Check("gold_rises_first", f"Optimising the fewest-label proxy first raises gold′: within 8 steps it is "
          f"{SE_MARGIN:g} SE (paired over the eval prompts) above the start.",
          "Gao et al. 2022, Fig. 1b (the rise before the fall); registered as the literature note's §1.4 guard",
          "A proxy that carries none of the judge's signal, or a judge that only falls, never rises; test: the "
          "arm's judge scores at every evaluation replaced by the start's.", _gold_rises_first),
    Check("gold_peaks_and_falls", f"The fewest-label proxy over-optimises: gold′ peaks before the end and falls from "
          f"its peak by more than {SE_MARGIN:g} SE (paired over the eval prompts), while the proxy is still higher "
          "at the end than at gold′'s peak.", GAO,
          "A judge that shares the proxy's blind spots (the correlated arm) or a proxy good enough over the KL "
          "reached never falls; test: the arm's judge scores replaced by the control arm's.",
          _falls_while_proxy_rises(lambda r: f"proxy{_fewest(r)}")),
    Check("noisy_proxy_falls", "With a quarter of its labels flipped, the fewest-label proxy also makes gold′ peak and "
          f"fall by more than {SE_MARGIN:g} SE while the proxy rises.",
          "Coste et al. 2023, App. E: 25 % label noise is used to highlight overoptimization",
          "Noise that only weakens an unbiased proxy should not bend gold (Gao §4.2.1); test: the arm's judge scores "
          "replaced by the control arm's.",
          _falls_while_proxy_rises(lambda r: f"proxy{_fewest(r)}_flip{round(r['config']['flip'] * 100)}")),
    Check("more_labels_peak_later", "The proxy trained on the most labels over-optimises later: gold′ does not fall "
          "significantly, or it peaks at a larger KL than with the fewest labels.",
          "Gao et al. 2022, Sec. 3.3 (more RM data: later, higher peaks)",
          "Label budgets that make no difference fall from peaks in either order; test: the two arms swapped.",
          _more_labels_peak_later),
    Check("correlated_judge_holds", f"Null: a proxy of the judge's own kind (gold-rm-labelled review pairs), judged "
          f"by gold-rm, does not see its judge fall by more than {SE_MARGIN:g} SE.",
          "Gao et al. 2022, Sec. 4.5 (substantial correlation between reward models); this lab's earlier design",
          "If correlated judges fell too, gold′ would not be needed; test: the arm's judge series reversed in time.",
          _holds("correlated")),
    Check("control_holds", f"Control: optimising gold′ itself, gold′ does not fall by more than {SE_MARGIN:g} SE. "
          "If it did, gold′ would be hackable and no fall above would mean anything.",
          "Issue design (a judge must not be exploitable by its own optimiser)",
          "A judge with blind spots of its own falls under its own optimisation; test: the arm's judge series "
          "reversed in time.", _holds("control")),
]


TARGET_KL = 100.0  # nats (d = 10): Coste et al. saw the fall within 150


def design(cfg: Config) -> dict:
    """The registered design at these settings: every arm with its role and expected outcome, and
    the distance the schedule is meant to reach (what it reached comes from `reached`)."""
    return {"arms": [{"name": a.name, "role": a.role, "expect": a.expect} for a in arms(cfg)],
            "judge": JUDGE, "target_kl_nats": TARGET_KL}


def max_kl(result: dict) -> float:
    return max(max(a["kl"]) for a in result["arms"])


def reached(results: list[dict]) -> dict:
    """What the evidence run reached: the largest KL of any arm on any seed, and the smallest
    seed's largest (so a shortfall on one seed shows)."""
    per_seed = [max_kl(r) for r in results]
    return {"max_kl_nats": round(max(per_seed), 1), "min_over_seeds_of_max_kl_nats": round(min(per_seed), 1)}


def headline(result: dict) -> str:
    parts = []
    for a in result["arms"]:
        pk = peak(a)
        parts.append(f"{a['name']}: peak at KL {pk['kl']:.0f}, fall {pk['fall']:+.2f} (SE {pk['se']:.2f})")
    return "; ".join(parts) + f"; KL reached {max_kl(result):.0f} nats"
