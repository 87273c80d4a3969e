"""T3d lab `prompt_oirl`: Prompt-OIRL in miniature (Sun et al. 2023, "Query-dependent prompt
evaluation and optimization with offline inverse RL").

Paper claim (Sun 2023, takeaway 3): the reward-model idea also works for prompts. Calling the LLM to
try every prompt on every query is expensive; instead, learn a reward model of (query, prompt) from
*offline logs* of past prompt trials, then pick a prompt per query without calling the policy.

Miniature: the task is "continue this review in the direction of its true verdict". Queries are
the 16-token endings of training reviews (logs) and held-out reviews (evaluation); each review's star
label is its hidden intent: the answer should agree with it.
Prompts are templates around the query that pre-fill the start of the answer, e.g.
"{query} In short, I loved" (a common prompting technique). The answer is the pre-filled text plus
the policy's completion; its reward is label_sign * gold-rm(answer). Logs: k sampled completions per
(query, prompt). The offline reward model: per-prompt ridge regression on query features from the
embedded `learned-rm` backbone (its score and mean hidden state), never the policy. We compare on
held-out queries: the best single prompt (chosen on the logs), the per-query Prompt-OIRL choice, and
the per-query oracle (the best prompt in hindsight on the evaluation samples, an upper bound).
"""

from __future__ import annotations

import math

import numpy as np

from .support import imdb
from .support.common import Progress, LabConfig, knob, paired_ci
from .support.verdict import Check

NAME = "prompt_oirl"

ANSWER_TOKENS = 12  # short answers: the closing line of a review, and a cheap sample

# prompts are templates around the query {q}; the text after {q} pre-fills the start of the answer
PROMPTS = ["{q}", "{q} In short, I loved", "{q} In short, I hated", "{q} To be honest,",
           "{q} Overall, a great", "{q} Overall, a boring"]


class Config(LabConfig):
    train_queries: int = knob(64, "Queries in the offline logs.", lo=8, hi=256)
    test_queries: int = knob(128, "Held-out queries the prompt is chosen for (enough to resolve the paired gain).",
                             lo=8, hi=128)
    prompts: int = knob(4, "How many of the candidate prompt templates to use.", lo=2, hi=len(PROMPTS))
    log_samples: int = knob(4, "Completions logged per (query, prompt).", lo=1, hi=8)
    eval_samples: int = knob(4, "Completions per (held-out query, prompt) to measure the choices.", lo=1, hi=8)
    features: str = knob("score", "Query features of the offline reward model: the learned-rm score alone, "
                         "or with its 128-d mean hidden state.", choices=["score", "score+embedding"])
    ridge: float = knob(10.0, "Ridge penalty of the offline reward model.", lo=0.0, hi=1000.0, advanced=True)
    query_tokens: int = knob(16, "Tokens of each review ending used as the query.", lo=4, hi=48, advanced=True)
    seed: int = knob(0, "Seed for sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        from ..config import ConfigError

        gens = self.prompts * (self.train_queries * self.log_samples + self.test_queries * self.eval_samples)
        if gens > 6000:
            raise ConfigError(f"prompts x queries x samples = {gens} completions is over the lab's budget of "
                              "6,000 (about a minute on 2 cores)")


QUICK = {"train_queries": 48}  # the held-out queries stay at 128: fewer cannot resolve the paired gain
LARGEST = {"train_queries": 256, "test_queries": 128, "prompts": 6, "log_samples": 2, "eval_samples": 3}


def _queries(reviews, n: int, tok, n_tokens: int, rng: np.random.Generator):
    """n review endings of n_tokens tokens with their star label (+1 positive, -1 negative).
    Endings, because that is where reviews state their verdict: the query must carry some hint of
    its intent for a query-dependent prompt choice to be possible at all."""
    picked = [reviews[i] for i in rng.permutation(len(reviews))[:n * 2]]
    out = []
    for r in picked:
        ids = tok(r.text, add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            out.append((tok.decode(ids[-n_tokens:]).strip(), 1.0 if r.positive else -1.0))
        if len(out) == n:
            break
    return out


def _features(texts: list[str]):
    """Query features from the embedded learned-rm (not the policy): its score and mean hidden state."""
    import torch

    from .. import zoo

    model, tok = zoo.load_sequence_classifier("learned-rm", "reward model")
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1)
    return np.concatenate([out.logits[:, :1].numpy(), pooled.numpy()], axis=1)


def _ridge(X: np.ndarray, y: np.ndarray, penalty: float):
    """Ridge regression with an unpenalised intercept, on standardised features."""
    mu, sd = X.mean(0), X.std(0) + 1e-8
    Z = (X - mu) / sd
    w = np.linalg.solve(Z.T @ Z + penalty * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return lambda Xn: ((Xn - mu) / sd) @ w + y.mean()


def _rewards(model, tok, gold, queries, prefixes, k: int, seed: int) -> np.ndarray:
    """[query, prompt] mean of label_sign * gold(answer) over k sampled answers, where the answer is
    the template's pre-filled text after the query plus the policy's completion."""
    texts = [pre.format(q=q) for q, _ in queries for pre in prefixes]
    groups = imdb.sample(model, tok, texts, k, ANSWER_TOKENS, seed)
    prefill = [pre.split("{q}", 1)[1] for _ in queries for pre in prefixes]
    flat = [(fill + c).strip() for fill, g in zip(prefill, groups) for c in g]
    scores = np.array(imdb.batched(gold, flat)).reshape(len(queries), len(prefixes), k)
    signs = np.array([s for _, s in queries])[:, None, None]
    return (signs * scores).mean(-1)


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the policy and the gold judge")
    s = imdb.setup(cfg.threads, cfg.seed)
    policy, tok, gold, train_reviews, held_reviews = s.base, s.tok, s.gold, s.train_reviews, s.held_reviews
    rng = np.random.default_rng(cfg.seed)
    prefixes = PROMPTS[:cfg.prompts]
    train_q = _queries(train_reviews, cfg.train_queries, tok, cfg.query_tokens, rng)
    test_q = _queries(held_reviews, cfg.test_queries, tok, cfg.query_tokens, rng)

    p(0.1, "logs: sampling the offline logs (every prompt on every training query)")
    logs = _rewards(policy, tok, gold, train_q, prefixes, cfg.log_samples, cfg.seed)
    p(0.5, "eval: sampling every prompt on the held-out queries (for measurement only)")
    held = _rewards(policy, tok, gold, test_q, prefixes, cfg.eval_samples, cfg.seed + 1)

    p(0.9, "oirl: fitting the (query, prompt) reward model from the logs")
    X_train, X_test = _features([q for q, _ in train_q]), _features([q for q, _ in test_q])
    if cfg.features == "score":
        X_train, X_test = X_train[:, :1], X_test[:, :1]
    predicted = np.stack([_ridge(X_train, logs[:, j], cfg.ridge)(X_test) for j in range(len(prefixes))], axis=1)
    choice = predicted.argmax(1)
    best_single_idx = int(logs.mean(0).argmax())
    rows = np.arange(len(test_q))
    result = {
        "best_single": float(held[:, best_single_idx].mean()),
        "oirl": float(held[rows, choice].mean()),
        "oracle": float(held.max(1).mean()),
        "random": float(held.mean()),
        "prompts": prefixes,
        "best_single_prompt": prefixes[best_single_idx],
        "log_mean_per_prompt": [round(float(x), 4) for x in logs.mean(0)],
        "test_mean_per_prompt": [round(float(x), 4) for x in held.mean(0)],
        "oirl_choices": [int((choice == j).sum()) for j in range(len(prefixes))],
        "choice_accuracy": float((choice == held.argmax(1)).mean()),
        "predicted_vs_measured_corr": float(np.corrcoef(predicted.ravel(), held.ravel())[0, 1]),
        "policy_calls_to_choose": 0,
        # the raw matrices [held-out query, prompt] the verdict is computed from
        "measured": np.round(held, 4).tolist(),
        "predicted": np.round(predicted, 4).tolist(),
        "best_single_index": best_single_idx,
    }
    p(1.0, "done")
    return {"lab": NAME, "config": cfg.model_dump(), **result,
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def _oirl_gain(result: dict) -> dict:
    """Per held-out query: the measured reward of the prompt the offline model picks, minus that of
    the best single prompt (chosen on the logs); paired over queries."""
    measured, predicted = np.asarray(result["measured"]), np.asarray(result["predicted"])
    rows = np.arange(len(measured))
    picked = measured[rows, predicted.argmax(1)]
    single = measured[:, result["best_single_index"]]
    return paired_ci(picked.tolist(), single.tolist())


def _beats_best_single(result: dict) -> str | None:
    g = _oirl_gain(result)
    if g["low"] > 0:
        return None
    return (f"Prompt-OIRL minus the best single prompt: {g['mean']:+.3f}, 95 % interval [{g['low']:+.3f}, "
            f"{g['high']:+.3f}] over {g['n']} held-out queries (not above 0)")


def query_correlation(result: dict) -> tuple[float, int]:
    """Correlation of predicted and measured rewards across held-out queries, within each prompt
    (both centred per prompt): how well the offline model tells which queries a prompt suits, apart
    from which prompt is best on average. Returns (r, number of values)."""
    measured, predicted = np.asarray(result["measured"]), np.asarray(result["predicted"])
    m = (measured - measured.mean(0)).ravel()
    q = (predicted - predicted.mean(0)).ravel()
    return float(np.corrcoef(q, m)[0, 1]), m.size


def _tracks_measured(result: dict) -> str | None:
    r, n = query_correlation(result)
    # Fisher's z interval; n - 3 - (prompts) for the per-prompt centring
    dof = max(1, n - 3 - len(result["measured"][0]))
    low = math.tanh(math.atanh(max(-0.999999, min(0.999999, r))) - 1.96 / math.sqrt(dof))
    if low > 0:
        return None
    return (f"within-prompt correlation of predicted and measured rewards {r:.2f}, 95 % interval from "
            f"{low:.2f} (not above 0)")


NOT_CHECKS = ["the oracle is never beaten by Prompt-OIRL: both are read from the same matrix of measured rewards."]
CHECKS = [
    Check("oirl_beats_best_single", "Choosing a prompt per query with a reward model learnt from offline logs beats "
          "the best single prompt on held-out queries (paired 95 % interval above 0), with no policy calls.",
          "Sun et al. 2023, Prompt-OIRL (ICLR 2024), Tables 1-2",
          "The query may carry no hint of which prompt suits it, or the offline model may not learn it; test: the "
          "offline model's predictions shuffled across queries.",
          _beats_best_single),
    Check("predictions_track_queries", "The offline reward model tells which held-out queries a prompt suits: its "
          "predictions correlate with the measured rewards within each prompt (95 % interval above 0).",
          "Sun et al. 2023, Prompt-OIRL, Sec. 4: the learnt reward model as a proxy of prompt quality",
          "A model fitted to noise predicts nothing; test: predictions shuffled across queries.",
          _tracks_measured),
]


def headline(result: dict) -> str:
    return (f"best single prompt {result['best_single']:+.2f}, Prompt-OIRL {result['oirl']:+.2f}, "
            f"oracle {result['oracle']:+.2f}; correlation {result['predicted_vs_measured_corr']:.2f}")
