"""Health alarms for a run: pure functions of its metric rows and latest samples.

Each alarm carries a one-sentence explanation and what to try, for the Playground's banner.
Thresholds are deliberately simple and documented here so that a teacher can explain them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KL_RUNAWAY_NATS_PER_TOKEN = 1.0  # beyond ~1 nat per token the text has left the reference model's style
NEGATIVE_KL = -0.5  # the sampled KL estimate is noisy around 0; below this it is a real problem
ENTROPY_COLLAPSE_RATIO = 0.35  # entropy below 35% of its starting value
CLIP_FRACTION_HIGH = 0.3
REPETITION_DISTINCT = 0.45  # measured: 0.65-0.75 for the base policy, 0.39-0.43 once it repeats itself


@dataclass(frozen=True)
class Alarm:
    key: str
    title: str
    explanation: str
    try_this: str
    severity: str = "warning"  # or "error"


def _recent(rows, key, n=5):
    vals = [r.get(key) for r in rows[-n:]]
    vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def distinct_word_ratio(texts) -> float | None:
    words = [w.lower() for t in texts for w in t.split()]
    return len(set(words)) / len(words) if len(words) >= 20 else None


def check(rows: list[dict], samples: list[dict] | None = None, status: str | None = None) -> list[Alarm]:
    alarms: list[Alarm] = []
    if status == "diverged":
        alarms.append(Alarm("diverged", "The run diverged",
                            "A reward or loss became NaN or infinite, so training stopped.",
                            "Lower the learning rate, check a custom reward for NaN, or raise kl_coef.", "error"))
    if not rows:
        return alarms
    kl = _recent(rows, "kl")
    if kl is not None and kl < NEGATIVE_KL:
        alarms.append(Alarm("negative_kl", "Negative KL",
                            "The sampled KL estimate is clearly below zero, which a true KL never is: the "
                            "policy's samples are scored under a distribution they were not drawn from.",
                            "Use temperature 1, more generations per prompt, or the k3 estimator (PPO)."))
    length = _recent(rows, "response_length") or 1.0
    if kl is not None and kl / length > KL_RUNAWAY_NATS_PER_TOKEN:
        alarms.append(Alarm("kl_runaway", "KL runaway",
                            f"The policy is {kl:.1f} nats per completion ({kl / length:.1f} per token) away "
                            "from the reference model, so its text no longer resembles what it learned from.",
                            "Raise kl_coef (beta) or lower the learning rate."))
    first_entropy = next((r.get("entropy") for r in rows if isinstance(r.get("entropy"), (int, float))), None)
    entropy = _recent(rows, "entropy")
    if first_entropy and entropy is not None and entropy < ENTROPY_COLLAPSE_RATIO * first_entropy:
        alarms.append(Alarm("entropy_collapse", "Entropy collapse",
                            f"Token entropy fell from {first_entropy:.2f} to {entropy:.2f}: the policy now "
                            "writes nearly the same words every time.",
                            "Raise kl_coef, lower the learning rate, or raise the temperature."))
    ratio = distinct_word_ratio([s.get("completion", "") for s in samples or []])
    if ratio is not None and ratio < REPETITION_DISTINCT:
        alarms.append(Alarm("repetition", "Repetition (reward hacking)",
                            f"Only {ratio:.0%} of the words in the latest samples are distinct: the policy "
                            "found words the reward loves and repeats them.",
                            "Raise kl_coef so that drifting from fluent text costs more than it earns."))
    clip = _recent(rows, "clip_fraction", 3)
    if clip is not None and clip > CLIP_FRACTION_HIGH:
        alarms.append(Alarm("clip_fraction", "High clip fraction",
                            f"{clip:.0%} of tokens hit the clip range: the updates try to move the policy much "
                            "further than the trust region allows.",
                            "Lower the learning rate or update_epochs; clipping is doing heavy lifting."))
    return alarms
