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

import functools
import math

from .support import imdb
from .support.common import Progress, fit_two_terms, fork_map, LabConfig, knob, lab_workers, quiet_libraries, r_squared, setup_torch
from .support.verdict import Check

NAME = "rm_curve"


class Config(LabConfig):
    labels: list[int] = knob([16, 32, 64, 128, 256], "Label budgets: preference pairs each reward model sees.",
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
    # least-squares fit of accuracy ~ a + b*log(n), the usual log-linear data scaling before saturation
    a, b = fit_two_terms(labels, accuracy, lambda n: 1.0, lambda n: math.log(n))
    p(1.0, "done")
    from .. import zoo

    embedded = [{"name": n, "labels": zoo.asset_info(n).get("pairs"), "accuracy": zoo.asset_info(n).get(
        "held_out_pair_accuracy")} for n in ("learned-rm", "gold-rm")]
    return {"lab": NAME, "config": cfg.model_dump(), "labels": labels, "accuracy": accuracy,
            "embedded": embedded,
            "train_accuracy": train_accuracy, "held_out_pairs": len(held),
            "fit": {"a": a, "b": b, "r2": r_squared(accuracy, [a + b * math.log(n) for n in labels])},
            "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def _interval(acc: float, n: int) -> float:
    """Half-width of the 95 % normal interval of an accuracy measured on n pairs."""
    return 1.96 * math.sqrt(max(acc * (1 - acc), 1e-9) / max(1, n))


def _more_labels_better(result: dict) -> str | None:
    acc, labels, n = result["accuracy"], result["labels"], result["held_out_pairs"]
    gap = acc[-1] - acc[0]
    need = math.hypot(_interval(acc[0], n), _interval(acc[-1], n))
    if gap > need:
        return None
    return (f"{labels[-1]} labels reached {acc[-1]:.3f} vs {acc[0]:.3f} with {labels[0]}: a gain of {gap:+.3f}, "
            f"within the 95 % noise of {need:.3f} on {n} held-out pairs")


def _above_chance(result: dict) -> str | None:
    acc, n = result["accuracy"][-1], result["held_out_pairs"]
    if acc - _interval(acc, n) > 0.5:
        return None
    return f"the largest budget's accuracy {acc:.3f} ± {_interval(acc, n):.3f} is not above chance (0.5)"


CHECKS = [
    Check("more_labels_better", "A reward model trained on more preference labels ranks held-out pairs better: "
          "the largest budget beats the smallest by more than the 95 % noise of the held-out measurement.",
          "Stiennon et al. 2020, Fig. 6; Ouyang et al. 2022, Sec. 3.5: RM accuracy grows with data",
          "If the labels carried no signal the models could learn from, accuracy would not move with n; test: "
          "the accuracies reversed against the label budgets.",
          _more_labels_better),
    Check("largest_above_chance", "The largest budget is above chance (0.5) by more than its 95 % interval.",
          "Bradley-Terry reward models learn a preference signal (Stiennon et al. 2020)",
          "A proxy that learnt nothing stays at 0.5 within noise; test: the accuracies reversed, so the largest "
          "budget carries the smallest budget's near-chance accuracy.",
          _above_chance),
]


def headline(result: dict) -> str:
    acc, labels = result["accuracy"], result["labels"]
    return f"held-out accuracy {acc[0]:.2f} at {labels[0]} labels → {acc[-1]:.2f} at {labels[-1]}"
