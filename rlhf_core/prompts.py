"""Prompts: the openings of bundled IMDB reviews, as in TRL's sentiment notebook.

The policy sees the first `n_tokens` tokens of a review ("This movie was one of the") and
continues it; the reward judges the continuation. Train prompts come from the training split of
the reviews, evaluation prompts from the held-out split, so evaluations never reuse a prompt.

An opening is used only where its last token ends a word: "I'm a huge fan of Iv" followed by
"ade" would make both the prompt and the sample unreadable. Every prompt still has exactly
`n_tokens` tokens (PPO needs fixed-length prompts), so the reviews whose first `n_tokens` tokens
cut a word are skipped rather than trimmed.
"""

from __future__ import annotations

from .config import ConfigError
from .zoo.data import imdb_reviews, split

TRAIN_PROMPTS = 4096
EVAL_PROMPTS = 256
_cache: dict[tuple, tuple[tuple[int, ...], ...]] = {}


class PromptError(ConfigError):
    """No review opening fits the request: a config problem, and the message names the setting."""


def continues_word(before: str, after: str) -> bool:
    """Whether `after` goes on with the word that `before` ends in ("Zombi" + "e's")."""
    if not before or not after:
        return False
    last, nxt = before[-1], after[0]
    return (last.isalnum() or last in "'’-") and (nxt.isalnum() or nxt in "'’")


def ends_at_word_boundary(tokenizer, ids, n_tokens: int) -> bool:
    """Whether the first `n_tokens` of `ids` end a word (needs the token after them to tell)."""
    head = tokenizer.decode(ids[:n_tokens])
    longer = tokenizer.decode(ids[:n_tokens + 1])
    return longer.startswith(head) and not continues_word(head, longer[len(head):])


def review_openings(tokenizer, n_tokens: int, which: str = "train", limit: int | None = None) -> list[tuple[int, ...]]:
    """Token ids of the first `n_tokens` tokens of reviews in the split (exactly n_tokens each),
    only from reviews where those tokens end at a word boundary."""
    if which not in ("train", "eval"):
        raise ValueError(f"which must be 'train' or 'eval', got {which!r}")
    limit = limit or (TRAIN_PROMPTS if which == "train" else EVAL_PROMPTS)
    key = (getattr(tokenizer, "name_or_path", ""), len(tokenizer), n_tokens, which, limit)
    if key not in _cache:
        train, held = split(imdb_reviews())
        reviews = train if which == "train" else held
        chars = max(200, n_tokens * 12)  # enough characters for n_tokens + 1 of ordinary English
        found: list[tuple[int, ...]] = []
        for start in range(0, len(reviews), 1024):  # tokenise in chunks until enough openings are found
            texts = [r.text[:chars] for r in reviews[start:start + 1024]]
            if getattr(tokenizer, "is_fast", False):  # character offsets: no decoding needed
                enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
                for text, ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"]):
                    end = offsets[n_tokens - 1][1] if len(ids) > n_tokens else None
                    if end is not None and not continues_word(text[:end], text[end:]):
                        found.append(tuple(ids[:n_tokens]))
            else:
                for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
                    if len(ids) > n_tokens and ends_at_word_boundary(tokenizer, ids, n_tokens):
                        found.append(tuple(ids[:n_tokens]))
            if len(found) >= limit:
                break
        if not found:
            raise PromptError(f"prompt_tokens={n_tokens}: no {which} review opening of that many tokens "
                              "ends at a word boundary")
        _cache[key] = tuple(found[:limit])
    return list(_cache[key])


def prompt_texts(tokenizer, n_tokens: int, which: str = "train", limit: int | None = None) -> list[str]:
    return [tokenizer.decode(ids) for ids in review_openings(tokenizer, n_tokens, which, limit)]
