"""T3a lab `rm_curve`: reward-model accuracy against the number of preference labels.

Paper claim (Sun 2023, takeaway 3): a reward model is a cheap, learned proxy for expensive human
feedback; how good the proxy is depends on how many labels were paid for. Each point is a fresh
GPT-2 classifier initialised from imdb-tiny and trained with TRL's RewardTrainer (Bradley-Terry
loss) on n (positive, negative) review-ending pairs, then scored on held-out pairs. Expected:
accuracy rises from chance (0.5) roughly log-linearly in n and saturates (e.g. Stiennon et al. 2020
and Ouyang et al. 2022 report RM accuracy growing with data size). The embedded reward models add
two far larger budgets (5,000 and 11,250 pairs, trained by `zoo build` for more epochs on longer
endings), reported beside the measured curve as the same recipe's end points.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

from . import imdb
from .common import Progress, fit_two_terms, fork_map, knob, lab_workers, quiet_libraries, r_squared, setup_torch

NAME = "rm_curve"
VERSION = 1


@dataclass
class Config:
    labels: list = knob([16, 32, 64, 128, 256], "Label budgets: preference pairs each reward model sees.",
                        lo=8, hi=2000)
    epochs: float = knob(1.5, "Passes over each budget's pairs.", lo=0.5, hi=4.0)
    trainable_blocks: int = knob(4, "Transformer blocks fine-tuned from the top (the score head always trains); "
                                 "4 = the whole model, slower.", lo=0, hi=4, advanced=True)
    learning_rate: float = knob(5e-4, "RewardTrainer learning rate.", lo=1e-5, hi=1e-2, advanced=True)
    held_out_pairs: int = knob(200, "Held-out pairs used to measure accuracy.", lo=50, hi=1000, advanced=True)
    seed: int = knob(0, "Seed for pair sampling and training.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        from ..config import ConfigError

        if sum(self.labels) * self.epochs > 3000:
            raise ConfigError(f"labels: {sum(self.labels)} pairs x {self.epochs} epochs is over the lab's budget "
                              "of 3,000 pair-passes (about a minute on 2 cores)")


QUICK = {"labels": [16, 64, 256], "held_out_pairs": 200}
LARGEST = {"labels": [16, 64, 256, 1024], "epochs": 2.0, "held_out_pairs": 1000}


_SHARED: dict = {}  # tokenizer and pairs, inherited by forked workers


def _one_budget(n: int, cfg: Config) -> tuple[float, float]:
    """(held-out accuracy, training-pair accuracy) of a reward model trained on the first n pairs."""
    pairs = _SHARED["all_pairs"][:n]  # nested budgets: each larger set contains the smaller ones
    rm = imdb.train_reward_model(pairs, _SHARED["tok"], epochs=cfg.epochs, lr=cfg.learning_rate, seed=cfg.seed,
                                 trainable_last_blocks=None if cfg.trainable_blocks >= 4 else cfg.trainable_blocks)
    scorer = imdb.scorer_for(rm, _SHARED["tok"])
    return round(imdb.pair_accuracy(scorer, _SHARED["held"]), 4), round(imdb.pair_accuracy(scorer, pairs[:50]), 4)


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading reviews and the tokenizer")
    setup_torch(cfg.threads, cfg.seed)
    quiet_libraries()
    _, tok = imdb.load_policy("imdb-tiny")
    train_reviews, held_reviews = imdb.reviews()
    labels = sorted(set(int(n) for n in cfg.labels))
    all_pairs = imdb.sentiment_pairs(train_reviews, max(labels), tok, cfg.seed)
    held = imdb.sentiment_pairs(held_reviews, cfg.held_out_pairs, tok, cfg.seed + 1)
    _SHARED.update(tok=tok, all_pairs=all_pairs, held=held)
    workers = lab_workers()
    p(0.05, f"train: {len(labels)} reward models on {workers} process(es)")
    # largest budgets first, so the two processes finish together
    done = fork_map(functools.partial(_one_budget, cfg=cfg), sorted(labels, reverse=True), workers,
                    lambda n, k: p(0.05 + 0.9 * k / len(labels), f"train: {k}/{len(labels)} reward models done"))
    accuracy = [done[n][0] for n in labels]
    train_accuracy = [done[n][1] for n in labels]
    _SHARED.clear()
    # reference: accuracy ~ a + b*log(n), the usual log-linear data scaling before saturation
    a, b = fit_two_terms(labels, accuracy, lambda n: 1.0, lambda n: math.log(n))
    p(1.0, "done")
    from .. import zoo

    embedded = [{"name": n, "labels": zoo.asset_info(n).get("pairs"), "accuracy": zoo.asset_info(n).get(
        "held_out_pair_accuracy")} for n in ("learned-rm", "gold-rm")]
    return {"lab": NAME, "config": dataclasses.asdict(cfg), "labels": labels, "accuracy": accuracy,
            "embedded": embedded,
            "train_accuracy": train_accuracy, "held_out_pairs": len(held),
            "fit": {"a": a, "b": b, "r2": r_squared(accuracy, [a + b * math.log(n) for n in labels])},
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def shape_problems(result: dict) -> list[str]:
    """More labels, a better proxy: the largest budget clearly beats the smallest and chance."""
    acc, labels = result["accuracy"], result["labels"]
    problems = []
    if not acc[-1] >= acc[0] + 0.05:
        problems.append(f"accuracy should rise with labels: {acc[0]:.3f} at {labels[0]} vs {acc[-1]:.3f} at {labels[-1]}")
    if not acc[-1] > 0.6:
        problems.append(f"the largest budget should be clearly above chance, got {acc[-1]:.3f}")
    if not result["fit"]["b"] > 0:
        problems.append("the log-linear fit should have a positive slope")
    return problems
