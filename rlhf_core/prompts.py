"""Prompts: the openings of bundled IMDB reviews, as in TRL's sentiment notebook.

The policy sees the first `n_tokens` tokens of a review ("This movie was one of the") and
continues it; the reward judges the continuation. Train prompts come from the training split of
the reviews, evaluation prompts from the held-out split, so evaluations never reuse a prompt.
"""

from __future__ import annotations

from .zoo.data import imdb_reviews, split

TRAIN_PROMPTS = 4096
EVAL_PROMPTS = 256
_cache: dict[tuple, tuple[tuple[int, ...], ...]] = {}


def review_openings(tokenizer, n_tokens: int, which: str = "train", limit: int | None = None) -> list[tuple[int, ...]]:
    """Token ids of the first `n_tokens` tokens of reviews in the split (exactly n_tokens each)."""
    if which not in ("train", "eval"):
        raise ValueError(f"which must be 'train' or 'eval', got {which!r}")
    limit = limit or (TRAIN_PROMPTS if which == "train" else EVAL_PROMPTS)
    key = (getattr(tokenizer, "name_or_path", ""), len(tokenizer), n_tokens, which, limit)
    if key not in _cache:
        train, held = split(imdb_reviews())
        reviews = train if which == "train" else held
        chars = max(200, n_tokens * 12)  # enough characters for n_tokens of ordinary English
        enc = tokenizer([r.text[:chars] for r in reviews[: limit * 2]], add_special_tokens=False)["input_ids"]
        _cache[key] = tuple(tuple(ids[:n_tokens]) for ids in enc if len(ids) >= n_tokens)[:limit]
    return list(_cache[key])


def prompt_texts(tokenizer, n_tokens: int, which: str = "train", limit: int | None = None) -> list[str]:
    return [tokenizer.decode(ids) for ids in review_openings(tokenizer, n_tokens, which, limit)]
