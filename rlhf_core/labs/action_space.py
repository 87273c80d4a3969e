"""T4 lab `action_space`: a large vocabulary and sparse feedback make policy learning slow.

Paper claim (Sun 2023, takeaway 4): for RL on a language model the action space is the whole
vocabulary at every token, and the feedback is one reward for the whole sequence. Both make policy
learning hard: with V actions a policy that knows nothing finds the right token with probability
1/V, so the number of tries before the first success in a state grows like V; and a single
sequence-level reward does not say *which* tokens earned it (credit assignment), so each update is
noisier than with a reward per token.

Experiment: the hidden automaton of `token_task` with `trap=False` and a small home cycle of
`home_size` tokens. Every token has a right successor (home tokens follow the cycle, every other
token points back to a home token), so a rollout that starts at a home token and never errs stays on
the cycle: the states that matter stay `home_size` while the vocabulary V, the number of actions,
grows. For each V, and for each seed, two learners start from the same uniform policy, with the same
seeds, batch and learning rate, and differ only in the reward they are given:
- dense: a reward of 1 for every right token, 0 otherwise, at every step;
- sparse: one reward per sequence, given at the end: the fraction of its tokens that were right.
We count the policy-gradient steps until a step's sampled batch has at least `threshold` right tokens.
A run that never gets there within `step_cap` steps is reported as not reached (null), not dropped.

Why a hand-written policy gradient instead of TRL: TRL's trainers take one scalar per sequence, so
the dense per-token reward cannot go through them. The learner here is REINFORCE with group
normalisation (GRPO-style advantages: the batch is the group):
- sparse: A_i = (R_i - mean R) / std R, the same for every token of sequence i (exactly GRPO);
- dense:  A_it = (r_it - mean r) / std r, each token judged by its own reward. The right token is
  optimal in every state whatever happens later, so crediting each token with its own reward
  (discount 0) has the same optimum as the sequence objective.
The policy is a tabular softmax, pi(. | last token) = softmax(theta[last token]), theta in R^{VxV},
starting at zero (uniform, so the 1/V argument holds exactly, with no generalisation between tokens
to help or hurt). The rule only depends on the last token, so it needs no position. The gradient of
log pi(a|s) with respect to theta[s] is onehot(a) - pi(.|s); it is written out and applied to the
visited rows only (autograd would materialise a dense V x V gradient at every step).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ConfigError
from .support.common import Progress, fit_scaled, LabConfig, knob, r_squared, rounded, setup_torch
from .support.token_task import TokenTask
from .support.verdict import Check

NAME = "action_space"
GRANULARITIES = ("dense", "sparse")
CURVE_POINTS = 200
WORK_BUDGET = 2.0e8  # learning curves are thinned to at most this many points per run


class Config(LabConfig):
    vocab: list[int] = knob([8, 32, 128, 512, 1024], "Vocabulary sizes V to compare (the number of possible "
                            "actions at every token).", lo=4, hi=2048)
    horizon: int = knob(8, "Tokens per sequence T; the sparse reward comes once, after all T.", lo=2, hi=12)
    threshold: float = knob(0.9, "Success: the fraction of right tokens in one step's sampled batch.",
                            lo=0.3, hi=0.98)
    seeds: int = knob(3, "Seeds per (V, reward); the medians over seeds are plotted, each seed is kept.",
                      lo=1, hi=3)
    step_cap: int = knob(3000, "Steps after which a run counts as 'not reached' (it costs the whole cap).",
                         lo=20, hi=4000, advanced=True)
    home_size: int = knob(4, "Length K of the home cycle: the states a successful policy visits.",
                          lo=2, hi=8, advanced=True)
    batch: int = knob(32, "Sequences sampled per policy-gradient step (the same for both rewards).",
                      lo=4, hi=32, advanced=True)
    learning_rate: float = knob(1.0, "SGD step on the policy's logits. Larger steps speed up dense learning, "
                                "but let sparse learners lock onto wrong tokens.", lo=0.01, hi=20.0,
                                advanced=True)
    seed: int = knob(0, "First seed (seeds are seed, seed+1, ...); the automaton is the same for all.",
                     lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        if len(self.vocab) > 7:
            raise ConfigError(f"vocab: at most 7 sizes, got {len(self.vocab)}")
        if min(self.vocab) <= self.home_size:
            raise ConfigError(f"vocab: every size must exceed home_size={self.home_size} (there must be tokens "
                              f"off the cycle), got {min(self.vocab)}")
        self.vocab = sorted(set(self.vocab))
        # cost guard: a learner needs ~V tries per state and each try costs ~V, so the work grows like
        # seeds * horizon * sum(V^2); LARGEST (about 50 s on a shared 2-core box) sits just below it
        work = self.seeds * self.horizon * sum(v * v for v in self.vocab)
        if work > WORK_BUDGET:
            raise ConfigError(f"vocab: {self.vocab} with seeds={self.seeds} and horizon={self.horizon} is too "
                              f"costly (seeds x horizon x sum(V^2) = {work:.3g} > {WORK_BUDGET:.3g}, about a "
                              "minute); drop the largest size, or use fewer seeds or a shorter horizon")


QUICK = {"vocab": [8, 64, 512], "seeds": 2}
LARGEST = {"vocab": [8, 32, 128, 512, 1024, 2048], "seeds": 3, "horizon": 12, "batch": 32, "step_cap": 4000}


def train(task: TokenTask, granularity: str, cfg: Config, seed: int) -> dict:
    """One learner from the uniform policy until a step's batch reaches the threshold (or the cap)."""
    import torch

    V, T, B, K = task.vocab_size, cfg.horizon, cfg.batch, task.home_size
    right_next = torch.as_tensor(task.home_next)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.zeros(V, V)  # theta[s] are the logits of pi(. | last token s): uniform at the start
    rows = torch.arange(B * T)
    accuracy: list[float] = []
    reached = None
    for step in range(1, cfg.step_cap + 1):
        # ---- sample a batch of sequences, each from a random home token ----
        last = torch.randint(0, K, (B,), generator=gen)
        states, actions, probs, right = [], [], [], []
        for _ in range(T):
            pi = torch.softmax(theta[last], -1)
            cdf = pi.cumsum(-1)  # inverse-CDF sampling: much faster than torch.multinomial for large V
            token = torch.searchsorted(cdf, torch.rand(B, 1, generator=gen) * cdf[:, -1:]).squeeze(1).clamp_(max=V - 1)
            states.append(last)
            actions.append(token)
            probs.append(pi)
            right.append((token == right_next[last]).float())
            last = token
        r = torch.stack(right, 1)  # [B, T]: 1 where the token was right
        accuracy.append(float(r.mean()))
        if accuracy[-1] >= cfg.threshold:
            reached = step
            break

        # ---- advantages: the only place where dense and sparse differ ----
        if granularity == "dense":
            signal = r  # each token's own reward
        else:
            signal = r.mean(1, keepdim=True).expand(B, T)  # one number per sequence, shared by its tokens
        per_sample = signal if granularity == "dense" else signal[:, :1]
        std = float(per_sample.std())
        if std == 0.0:  # every reward equal (e.g. nothing right yet): no signal to learn from
            continue
        advantage = (signal - per_sample.mean()) / std

        # ---- REINFORCE step: theta[s] += lr/B * A * (onehot(a) - pi(.|s)) for every sampled token ----
        grad = torch.stack(probs, 1).reshape(B * T, V).neg_()
        grad[rows, torch.stack(actions, 1).reshape(-1)] += 1.0
        grad.mul_((cfg.learning_rate / B) * advantage.reshape(-1, 1))
        theta.index_add_(0, torch.stack(states, 1).reshape(-1), grad)
    stride = max(1, math.ceil(len(accuracy) / CURVE_POINTS))
    picked = list(range(0, len(accuracy), stride))
    if picked[-1] != len(accuracy) - 1:
        picked.append(len(accuracy) - 1)
    return {
        "steps": reached, "reached": reached is not None, "steps_run": len(accuracy),
        "final_accuracy": round(accuracy[-1], 4),
        "curve": {"step": [i + 1 for i in picked], "accuracy": rounded([accuracy[i] for i in picked], 3)},
    }


def _median_steps(runs: list[dict]) -> float | None:
    """Median over seeds, a run that never reached the threshold counting as 'more than the cap';
    None when the median itself was not reached."""
    values = sorted(r["steps"] if r["reached"] else math.inf for r in runs)
    n = len(values)
    mid = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return None if math.isinf(mid) else float(mid)


def _power_fit(vocab: list[int], steps: list) -> dict | None:
    """steps ~ a * V^k, least squares in log-log over the sizes where the median was reached."""
    pts = [(v, s) for v, s in zip(vocab, steps) if s]
    if len(pts) < 2:
        return None
    x = np.log([v for v, _ in pts])
    y = np.log([s for _, s in pts])
    k, log_a = np.polyfit(x, y, 1)
    return {"a": float(math.exp(log_a)), "exponent": float(k), "r2_log": r_squared(list(y), list(k * x + log_a))}


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: torch")
    setup_torch(cfg.threads, cfg.seed)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    runs = {g: [] for g in GRANULARITIES}  # runs[g][i_vocab] = [per-seed result]
    total_work = sum(cfg.vocab) * len(seeds) * len(GRANULARITIES)  # per-step cost grows like V
    done = 0
    for V in cfg.vocab:
        task = TokenTask(vocab_size=V, home_size=cfg.home_size, trap=False, seed=cfg.seed)
        for g in GRANULARITIES:
            per_seed = []
            for s in seeds:
                p(0.02 + 0.96 * done / total_work, f"train: V={V}, {g} reward, seed {s}")
                per_seed.append(train(task, g, cfg, s))
                done += V
            runs[g].append(per_seed)

    medians = {g: [_median_steps(r) for r in runs[g]] for g in GRANULARITIES}
    tokens_per_step = cfg.batch * cfg.horizon
    fits = {}
    for g in GRANULARITIES:
        pts = [(v, s) for v, s in zip(cfg.vocab, medians[g]) if s]
        c = fit_scaled([v for v, _ in pts], [s for _, s in pts], lambda v: v) if pts else None
        fits[g] = {
            "c_linear": c,  # steps ~ c * V: tries before the first success grow like V
            "r2_linear": r_squared([s for _, s in pts], [c * v for v, _ in pts]) if len(pts) > 1 else None,
            "power": _power_fit(cfg.vocab, medians[g]),
        }
    p(1.0, "done")
    return {
        "lab": NAME, "config": cfg.model_dump(),
        "vocab": list(cfg.vocab),
        "dense_steps": medians["dense"],
        "sparse_steps": medians["sparse"],
        "dense_samples": [None if s is None else int(s * tokens_per_step) for s in medians["dense"]],
        "sparse_samples": [None if s is None else int(s * tokens_per_step) for s in medians["sparse"]],
        "sparse_over_dense": [None if d is None or s is None else round(s / d, 3)
                              for d, s in zip(medians["dense"], medians["sparse"])],
        "random_hit_probability": [1.0 / v for v in cfg.vocab],
        "per_seed": {g: {"seeds": seeds,
                         "steps": [[r["steps"] for r in rs] for rs in runs[g]],
                         "reached": [[r["reached"] for r in rs] for rs in runs[g]],
                         "final_accuracy": [[r["final_accuracy"] for r in rs] for rs in runs[g]]}
                     for g in GRANULARITIES},
        "curves": {g: [[r["curve"] for r in rs] for rs in runs[g]] for g in GRANULARITIES},
        "fits": fits,
        "step_cap": cfg.step_cap, "threshold": cfg.threshold, "tokens_per_step": tokens_per_step,
        "runtime_s": round(p.elapsed(), 2), "timings": p.timings,
    }


def _steps(result: dict) -> dict[str, list[float]]:
    """Steps to the threshold per granularity; a median that never got there counts as infinite."""
    return {g: [math.inf if s is None else s for s in result[f"{g}_steps"]] for g in GRANULARITIES}


def _grows_with_vocab(result: dict) -> str | None:
    vocab, steps, seen = result["vocab"], _steps(result), []
    for g in GRANULARITIES:
        ys = steps[g]
        if math.isinf(ys[0]):
            seen.append(f"the {g} learner did not reach the threshold even at V={vocab[0]}")
            continue
        if not ys[-1] >= 3 * ys[0]:
            seen.append(f"{g}: V={vocab[-1]} took {ys[-1]} steps vs {ys[0]} at V={vocab[0]} (growth needs 3x)")
        drops = [(vocab[i], vocab[i + 1]) for i in range(len(ys) - 1) if ys[i + 1] < 0.8 * ys[i]]
        if drops:
            seen.append(f"{g}: steps fell by over 20 % as V grew from {drops[0][0]} to {drops[0][1]}")
    return "; ".join(seen) or None


def _sparse_slower(result: dict) -> str | None:
    vocab, steps, cap, seen = result["vocab"], _steps(result), result["step_cap"], []
    for v, d, s in zip(vocab, steps["dense"], steps["sparse"]):
        if math.isinf(d) and math.isinf(s):
            seen.append(f"at V={v} neither learner reached the threshold within {cap} steps (inconclusive)")
        elif not s > d:
            seen.append(f"at V={v} sparse took {s} steps, dense {d}")
    return "; ".join(seen) or None


def _gap_widens(result: dict) -> str | None:
    # the gap at the largest V where at least the dense learner got there (an unreached sparse run
    # counts at the cap, a lower bound on its gap)
    vocab, steps, cap = result["vocab"], _steps(result), result["step_cap"]
    gaps = [(v, min(s, cap) - d) for v, d, s in zip(vocab, steps["dense"], steps["sparse"]) if not math.isinf(d)]
    if len(gaps) >= 2 and gaps[-1][1] > gaps[0][1]:
        return None
    if len(gaps) < 2:
        return "the dense learner reached the threshold at fewer than two vocabulary sizes"
    return f"the sparse-minus-dense gap went from {gaps[0][1]} steps at V={gaps[0][0]} to {gaps[-1][1]} at V={gaps[-1][0]}"


CHECKS = [
    Check("steps_grow_with_vocab", "Steps to learn grow with the action space V for both rewards (the largest V "
          "takes at least 3x the smallest, and no step up in V cuts the steps by over 20 %).",
          "Sun 2023, takeaway 4: huge action spaces make policy learning hard",
          "A task whose difficulty did not depend on V would take about the same steps at every V; test: the "
          "vocabulary sizes reversed against the measured steps.", _grows_with_vocab),
    Check("sparse_needs_more_steps", "One sequence-level reward needs more steps than a dense per-token reward at "
          "every V.", "Sun 2023, takeaway 4: sparse, sequence-level reward makes credit assignment hard",
          "If the sequence-level signal carried as much credit per token, the two learners would tie; test: the "
          "sparse learner's steps replaced by the dense one's.", _sparse_slower),
    Check("gap_widens_with_vocab", "The sparse-minus-dense gap (in steps) widens as V grows.",
          "Sun 2023, takeaway 4: the two difficulties compound",
          "A constant overhead of sparse reward would not widen; test: the sparse steps set to the dense ones plus "
          "their gap at the smallest V.", _gap_widens),
]


def headline(result: dict) -> str:
    fmt = lambda xs: "/".join("—" if x is None else f"{x:g}" for x in xs)  # noqa: E731
    return (f"steps to 90 % at V = {'/'.join(map(str, result['vocab']))}: dense {fmt(result['dense_steps'])}, "
            f"sparse {fmt(result['sparse_steps'])}")
