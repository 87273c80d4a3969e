"""T1 lab `offline_online`: offline DPO vs online RLHF (a reward model, then RL) from the same
gold-labelled preference pairs, compared on KL-binned frontiers, under two kinds of pairs.

Paper claim (Sun 2023, takeaway 1): RLHF is *online* inverse RL with offline demonstrations. The
pairs only say something about the answers in them; online RL learns a reward from them, then keeps
sampling its own answers and is scored on each. DPO learns from the pairs alone.

What the literature predicts, registered before the evidence run: the edge of online learning
depends on where the pairs come from. With both answers sampled from the reference policy, the DPO
paper's IMDB experiment (Rafailov et al. 2023, Fig. 2) found DPO's reward-KL frontier at or above
PPO's, and Tang et al. 2024 (Fig. 12) found offline does best when the pairs come from the SFT
policy. With off-policy pairs, Xu et al. 2024 (§4, Table 2) show DPO suffers from the distribution
shift, and Tang et al. 2024 find online ahead at equal KL. So the lab runs two pair conditions:
- `reference` (A): both answers of a pair are the reference policy's own samples;
- `off_policy` (B): both answers are real review text: the opening's own continuation and another
  review's, which the tiny reference policy would rarely write.

The gold judge (`gold-rm`) labels every pair (Gao et al.'s synthetic setup) and judges the result.
In each condition, small sweeps of both methods (DPO over `dpo_betas`; a reward model on the same
pairs, then GRPO over `rl_betas`) are evaluated every `eval_every` steps on fixed held-out prompts:
gold per prompt and the KL from the start. A method's frontier is its best checkpoint (by mean gold)
in each KL bin [0,1), [1,2), [2,4), [4,8), [8,16) nats. gap(condition) is online minus DPO, per
prompt, averaged over the bins both methods reach.
"""

from __future__ import annotations

import functools
import random
import statistics

from .support import imdb
from .support.common import LabConfig, Progress, fork_map, knob, lab_scratch_dir, lab_workers, paired_ci
from .support.verdict import Check

NAME = "offline_online"
CONDITIONS = ("reference", "off_policy")
METHODS = ("dpo", "online")
LABELS = {"dpo": "DPO (offline)", "online": "reward model + GRPO (online)"}
BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0))
ANSWER_TOKENS = 24


class Config(LabConfig):
    pairs: int = knob(64, "Gold-labelled preference pairs per condition: the whole label budget, shared by "
                      "both methods.", lo=32, hi=512)
    steps: int = knob(16, "Training steps per run (16 pairs or completions each).", lo=6, hi=48)
    dpo_betas: list[float] = knob([0.05], "DPO's sweep over beta (lower beta lets it travel further).",
                                  lo=0.01, hi=1.0)
    rl_betas: list[float] = knob([0.0], "GRPO's sweep over its KL coefficient.", lo=0.0, hi=1.0)
    dpo_learning_rate: float = knob(2.5e-4, "DPO learning rate.", lo=1e-5, hi=3e-3, advanced=True)
    rl_learning_rate: float = knob(2.5e-4, "GRPO learning rate.", lo=1e-5, hi=3e-3, advanced=True)
    eval_every: int = knob(4, "Evaluate every this many steps.", lo=2, hi=24, advanced=True)
    eval_prompts: int = knob(16, "Held-out prompts every run answers at each evaluation (paired).", lo=8, hi=96,
                             advanced=True)
    samples_per_prompt: int = knob(2, "Answers per prompt at each evaluation.", lo=1, hi=16, advanced=True)
    seed: int = knob(0, "Seed for data, training and sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        from ..config import ConfigError

        runs = len(CONDITIONS) * (len(self.dpo_betas) + len(self.rl_betas))
        if runs * self.steps > 240:
            raise ConfigError(f"steps: {runs} runs x {self.steps} steps is over the lab's budget of 240 training "
                              "steps (over two minutes on a slow 2-core box); use fewer betas or steps")


# The defaults are the interactive run (one seed within a minute on 2 cores): both conditions, both
# methods and every check, one beta each, on fewer pairs, steps and eval prompts. The registered
# design itself runs at these settings (`lab offline_online --evidence`), on 5 seeds in
# scripts/lab_evidence.py: a two-beta sweep of each method.
EVIDENCE = {"pairs": 128, "steps": 24, "dpo_betas": [0.05, 0.3], "rl_betas": [0.0, 0.05], "eval_every": 3,
            "eval_prompts": 32}
QUICK = {"pairs": 64, "steps": 12, "eval_every": 4, "eval_prompts": 24}
LARGEST = {"pairs": 512, "steps": 30, "eval_every": 2, "eval_prompts": 96, "samples_per_prompt": 16}


class Evaluator:
    """Scores a policy on the fixed held-out prompts: gold per prompt and KL from the start."""

    def __init__(self, cfg: Config, start, tok, gold, prompts: list[str]):
        self.cfg, self.start, self.tok, self.gold, self.prompts = cfg, start, tok, gold, prompts

    def __call__(self, model, step: int) -> dict:
        import torch

        n = self.cfg.samples_per_prompt
        was_training = model.training
        with torch.random.fork_rng():  # evaluating must not shift training's random stream
            comps = [c for group in imdb.sample(model, self.tok, self.prompts, n, ANSWER_TOKENS,
                                                self.cfg.seed + 7 + step) for c in group]
        flat = [q for q in self.prompts for _ in range(n)]
        gold = imdb.batched(self.gold, comps)
        kl = imdb.sequence_kl(model, self.start, self.tok, flat, comps) if step else [0.0] * len(comps)
        if was_training:
            model.train()
        return {"step": step, "gold": statistics.fmean(gold), "kl": statistics.fmean(kl),
                "gold_per_prompt": [round(statistics.fmean(gold[i:i + n]), 4) for i in range(0, len(gold), n)],
                "sample": {"prompt": flat[0], "completion": comps[0], "gold": round(gold[0], 3)}}


def _labelled(prompts: list[str], answers: list[tuple[str, str]], gold) -> list[dict]:
    scores = imdb.batched(gold, [a for pair in answers for a in pair])
    pairs = []
    for i, (prompt, (a, b)) in enumerate(zip(prompts, answers)):
        sa, sb = scores[2 * i], scores[2 * i + 1]
        win, lose = (a, b) if sa >= sb else (b, a)
        pairs.append({"prompt": prompt, "chosen": win, "rejected": lose, "gold_gap": round(abs(sa - sb), 4)})
    return pairs


def reference_pairs(start, tok, gold, prompts: list[str], seed: int) -> list[dict]:
    """Condition A: two answers per prompt sampled from the reference policy; gold picks."""
    return _labelled(prompts, [tuple(g) for g in imdb.sample(start, tok, prompts, 2, ANSWER_TOKENS, seed)], gold)


def off_policy_pairs(tok, gold, reviews, n: int, seed: int) -> list[dict]:
    """Condition B: a review's opening (8 tokens, ending at a word boundary) as the prompt; its own
    next 24 tokens and another review's as the two answers, both human text the reference policy
    would rarely write; gold picks."""
    from ..prompts import ends_at_word_boundary

    rng = random.Random(seed)
    chunks = []
    for review in rng.sample(list(reviews), min(len(reviews), 8 * n)):
        ids = tok(review.text[:400], add_special_tokens=False)["input_ids"]
        if len(ids) > 8 + ANSWER_TOKENS and ends_at_word_boundary(tok, ids, 8):
            chunks.append((tok.decode(ids[:8]), tok.decode(ids[8:8 + ANSWER_TOKENS]).strip()))
        if len(chunks) == 2 * n:
            break
    prompts = [p for p, _ in chunks[:n]]
    answers = [(own, chunks[n + i][1]) for i, (_, own) in enumerate(chunks[:n])]
    return _labelled(prompts, answers, gold)


def _train_dpo(cfg: Config, beta: float, start, tok, pairs, evaluate, path: list) -> None:
    from transformers import TrainerCallback

    from ..algorithms import dpo
    from ..algorithms.common import RolloutRecorder
    from ..config import RunConfig
    from ..rewards import Reward, RewardSpec
    from ..worker import _quiet_trainer

    run_cfg = RunConfig(algorithm="dpo", steps=cfg.steps, kl_coef=beta, learning_rate=cfg.dpo_learning_rate,
                        pairs=len(pairs), prompts_per_step=4, generations_per_prompt=4, seed=cfg.seed,
                        sample_every=10_000, device="cpu", threads=0)
    policy = imdb.fresh_copy(start)
    # the run's own reward only scores DPO's fresh samples (once, at the start): gold is not consulted
    recorder = RolloutRecorder(Reward(RewardSpec("none", "unused", (0.0, 0.0)), lambda t, _p: [0.0] * len(t)),
                               tok, 1.0)

    class Evaluate(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step % cfg.eval_every == 0:
                path.append(evaluate(policy, state.global_step))

    adapter = dpo.build(run_cfg, policy, tok, recorder, [p["prompt"] for p in pairs], lab_scratch_dir("dpo"), "cpu",
                        [Evaluate()], pairs=[{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    _quiet_trainer(adapter.trainer)
    adapter.train()


_SHARED: dict = {}  # models and data made once, inherited by the forked runs


def _run(spec: tuple[str, str, float], cfg: Config) -> dict:
    """One run of the sweep: (condition, method, beta), with its reward-KL path."""
    condition, method, beta = spec
    s = _SHARED
    path = [s["first"]]
    if method == "dpo":
        _train_dpo(cfg, beta, s["start"], s["tok"], s["pairs"][condition], s["evaluate"], path)
    else:
        policy = imdb.fresh_copy(s["start"])

        def on_rl_step(step, metrics, roll):
            if step % cfg.eval_every == 0:
                path.append(s["evaluate"](policy, step))

        imdb.train_grpo(policy, s["tok"], s["reward_models"][condition], "reward-model", steps=cfg.steps,
                        kl_coef=beta, learning_rate=cfg.rl_learning_rate, seed=cfg.seed,
                        prompts=[x["prompt"] for x in s["pairs"][condition]], on_step=on_rl_step)
    return {"condition": condition, "method": method, "beta": beta, "path": path}


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the starting policy and the gold judge")
    from ..prompts import prompt_texts

    s = imdb.setup(cfg.threads, cfg.seed)
    start, tok, gold = s.base, s.tok, s.gold
    rng = random.Random(cfg.seed)
    held = prompt_texts(tok, 8, "eval")
    p(0.03, f"pairs: {cfg.pairs} per condition, labelled by the gold judge")
    pairs = {"reference": reference_pairs(start, tok, gold, rng.sample(prompt_texts(tok, 8, "train"), cfg.pairs),
                                          cfg.seed),
             "off_policy": off_policy_pairs(tok, gold, s.train_reviews, cfg.pairs, cfg.seed)}
    check_pairs = reference_pairs(start, tok, gold, held[-64:], cfg.seed + 3)  # RM accuracy on policy samples
    p(0.08, "rm: a reward model on each condition's pairs")
    reward_models, accuracy = {}, {}
    for condition, data in pairs.items():
        rm = imdb.train_reward_model([{"chosen": x["chosen"], "rejected": x["rejected"]} for x in data], tok,
                                     epochs=2, lr=5e-4, seed=cfg.seed)
        reward_models[condition] = imdb.scorer_for(rm, tok)
        accuracy[condition] = round(imdb.pair_accuracy(reward_models[condition], check_pairs), 4)
    evaluate = Evaluator(cfg, start, tok, gold, held[:cfg.eval_prompts])
    _SHARED.update(start=start, tok=tok, pairs=pairs, reward_models=reward_models, evaluate=evaluate,
                   first=evaluate(start, 0))
    specs = [(c, m, b) for c in CONDITIONS for m in METHODS for b in (cfg.dpo_betas if m == "dpo" else cfg.rl_betas)]
    workers = min(lab_workers(), len(specs))
    p(0.12, f"runs: {len(specs)} runs of {cfg.steps} steps on {workers} process(es)")
    by_spec = fork_map(functools.partial(_run, cfg=cfg), specs, workers,
                       lambda spec, done: p(0.12 + 0.86 * done / len(specs),
                                            f"runs: {done}/{len(specs)} done ({spec[0]}, {spec[1]}, β={spec[2]:g})"))
    _SHARED.clear()
    p(1.0, "done")
    return {"lab": NAME, "config": cfg.model_dump(), "runs": [by_spec[x] for x in specs],
            "pairs": {c: {"count": len(d), "mean_gold_gap": round(statistics.fmean(x["gold_gap"] for x in d), 4),
                          "examples": d[:3]} for c, d in pairs.items()},
            "reward_model": {c: {"held_out_pair_accuracy": accuracy[c], "held_out_pairs": len(check_pairs)}
                             for c in CONDITIONS},
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


# ---- frontiers and the checks: registered before the evidence run --------------------------------

def frontier(result: dict, condition: str, method: str) -> dict[int, dict]:
    """{bin index: the checkpoint with the highest mean gold in that KL bin}, over every run of the
    method's sweep in the condition."""
    best: dict[int, dict] = {}
    for r in result["runs"]:
        if r["condition"] != condition or r["method"] != method:
            continue
        for point in r["path"]:
            for i, (lo, hi) in enumerate(BINS):
                if lo <= point["kl"] < hi and (i not in best or point["gold"] > best[i]["gold"]):
                    best[i] = point
    return best


def gap(result: dict, condition: str) -> dict | None:
    """Online minus DPO per held-out prompt, averaged over the KL bins both frontiers reach (None
    when they share no bin), with the paired 95 % interval over prompts."""
    online, dpo = frontier(result, condition, "online"), frontier(result, condition, "dpo")
    shared = sorted(set(online) & set(dpo))
    if not shared:
        return None
    per_prompt = [statistics.fmean(online[b]["gold_per_prompt"][j] - dpo[b]["gold_per_prompt"][j] for b in shared)
                  for j in range(len(online[shared[0]]["gold_per_prompt"]))]
    return {"bins": [BINS[b] for b in shared], "per_prompt": per_prompt,
            **paired_ci(per_prompt, [0.0] * len(per_prompt))}


def _describe(g: dict | None, condition: str) -> str:
    if g is None:
        return f"{condition}: the two frontiers share no KL bin"
    return (f"{condition}: online − DPO {g['mean']:+.3f}, 95 % [{g['low']:+.3f}, {g['high']:+.3f}] over {g['n']} "
            f"prompts, bins {', '.join(f'[{lo:g},{hi:g})' for lo, hi in g['bins'])}")


def _online_ahead_off_policy(result: dict) -> str | None:
    g = gap(result, "off_policy")
    if g is not None and g["low"] > 0:
        return None
    return _describe(g, "off_policy") + " (the interval must lie above 0)"


def _no_online_edge_on_policy(result: dict) -> str | None:
    g = gap(result, "reference")
    if g is None or g["low"] <= 0:
        return None
    return _describe(g, "reference") + ": online ahead with reference-sampled pairs"


def _gap_grows_off_policy(result: dict) -> str | None:
    a, b = gap(result, "reference"), gap(result, "off_policy")
    if a is None or b is None:
        return f"{_describe(a, 'reference')}; {_describe(b, 'off_policy')}"
    d = paired_ci(b["per_prompt"], a["per_prompt"])
    if d["low"] > 0:
        return None
    return (f"gap(off_policy) − gap(reference) {d['mean']:+.3f}, 95 % [{d['low']:+.3f}, {d['high']:+.3f}] over "
            f"{d['n']} prompts (must lie above 0)")


CHECKS = [
    Check("online_ahead_off_policy", "With off-policy pairs (real review text), online RLHF's KL-binned frontier lies "
          "above DPO's: the paired gold gap over the held-out prompts, averaged over the shared bins, has its 95 % "
          "interval above 0.",
          "Xu et al. 2024 (arXiv 2404.10719), §4 and Table 2: DPO suffers under distribution shift; Tang et al. "
          "2024 (arXiv 2405.08448), Fig. 1: online ahead at equal KL",
          "A reward model learnt from 128 pairs may guide RL no better than DPO uses the pairs; test: the online "
          "runs' paths replaced by the DPO runs' (every prompt's noise kept).", _online_ahead_off_policy),
    Check("no_online_edge_on_policy", "Null: with pairs sampled from the reference policy, online RLHF is not "
          "significantly ahead of DPO (the gap's 95 % interval reaches 0 or below).",
          "Rafailov et al. 2023 (DPO), Fig. 2: on IMDB with reference-sampled pairs DPO's frontier dominates PPO's; "
          "Tang et al. 2024, Fig. 12",
          "Online RL could be ahead whatever the pairs; test: every online point lifted one gold point.",
          _no_online_edge_on_policy),
    Check("gap_grows_off_policy", "Mechanism: online's edge over DPO is larger with off-policy pairs than with "
          "reference-sampled ones (paired over prompts, 95 % interval of gap(B) − gap(A) above 0).",
          "Xu et al. 2024, Table 2 (distribution shift); Tajwar et al. 2024 (on-policy sampling matters most when "
          "the data lie where the reference puts little mass)",
          "If where the pairs come from did not matter, the two gaps would match; test: the conditions' runs "
          "swapped.", _gap_grows_off_policy),
]


def design(cfg: Config) -> dict:
    arms = [{"name": f"{c}/{m}", "role": "null" if c == "reference" else "effect",
             "expect": ("no significant online edge, or DPO ahead (DPO paper, IMDB)" if c == "reference" else
                        "online above DPO on the KL-binned frontier (Xu et al., Tang et al.)")}
            for c in CONDITIONS for m in METHODS]
    return {"arms": arms, "pair_conditions": list(CONDITIONS), "kl_bins": [list(b) for b in BINS]}


def headline(result: dict) -> str:
    parts = [_describe(gap(result, c), c) for c in CONDITIONS]
    reach = max(p["kl"] for r in result["runs"] for p in r["path"])
    return "; ".join(parts) + f"; KL reached {reach:.1f} nats"
