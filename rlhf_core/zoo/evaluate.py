"""How readable a policy's text is: `python -m rlhf_core zoo eval [--policy NAME] [--json]`.

Three figures, all over fixed inputs so that two policies (or two builds) compare fairly:
- `real_word_fraction`: of the words the policy writes after fixed openings at temperature 1, the
  share that occur at least `MIN_COUNT` times in the 25k IMDB reviews (case-folded). Real reviews
  score about 0.99 on it; invented words ("Zombiade") pull it down.
- `distinct_2`: distinct word bigrams over all word bigrams of the same samples (1.0 = no
  repetition; a policy that loops on "good good good" scores low).
- `heldout_loss`: mean next-token cross-entropy on held-out reviews the policy never trained on,
  plus `heldout_bits_per_char`, which, unlike the loss per token, compares across tokenizers.
"""

from __future__ import annotations

import collections
import functools
import math
import re

from .data import imdb_reviews, split

MIN_COUNT = 5
OPENINGS = ("This movie was", "I watched this film", "The acting in this movie", "My wife and I",
            "The plot of this film", "I have to say that", "When I first saw this", "The director")
SAMPLES_PER_OPENING = 8
NEW_TOKENS = 48
HELDOUT_REVIEWS = 200
HELDOUT_CHARS = 600
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """Case-folded words: runs of letters, with inner apostrophes ("don't")."""
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=1)
def corpus_counts() -> collections.Counter:
    """Word counts over all 25k IMDB reviews."""
    counts: collections.Counter = collections.Counter()
    for review in imdb_reviews():
        counts.update(words(review.text))
    return counts


def real_word_fraction(texts: list[str], min_count: int = MIN_COUNT) -> float:
    counts = corpus_counts()
    ws = [w for t in texts for w in words(t)]
    return sum(counts[w] >= min_count for w in ws) / len(ws) if ws else float("nan")


def distinct_2(texts: list[str]) -> float:
    bigrams = [b for t in texts for b in zip(words(t), words(t)[1:])]
    return len(set(bigrams)) / len(bigrams) if bigrams else float("nan")


def heldout_loss(model, tok, n_reviews: int = HELDOUT_REVIEWS, chars: int = HELDOUT_CHARS,
                 batch: int = 16) -> tuple[float, float]:
    """(mean loss per token, bits per character) on the first `chars` characters of held-out reviews."""
    import torch

    _, held = split(imdb_reviews())
    texts = [r.text[:chars] for r in held[:n_reviews]]
    total_nll, total_tokens, total_chars = 0.0, 0, 0
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                chunk = texts[i:i + batch]
                enc = tok(chunk, return_tensors="pt", padding=True, truncation=True,
                          max_length=min(getattr(model.config, "n_positions", 512) or 512, 512),
                          add_special_tokens=False).to(model.device)
                logits = model(**enc).logits[:, :-1].float()
                target = enc["input_ids"][:, 1:]
                mask = enc["attention_mask"][:, 1:].bool()
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
                total_nll += float(nll[mask].sum())
                total_tokens += int(mask.sum())
                # characters scored: the text that the predicted tokens decode to
                total_chars += sum(len(tok.decode(ids[m])) for ids, m in zip(target, mask))
    finally:
        tok.padding_side = side
    return total_nll / total_tokens, total_nll / math.log(2) / total_chars


def evaluate(name: str, seed: int = 0) -> dict:
    """Every figure for one policy name (embedded, folder or hub id)."""
    import torch

    from . import load_policy
    from ..generation import generate

    model, tok = load_policy(name)
    model.eval()
    samples = generate(model, tok, list(OPENINGS), SAMPLES_PER_OPENING, NEW_TOKENS, temperature=1.0, seed=seed)
    texts = [t for per in samples for t in per]
    loss, bpc = heldout_loss(model, tok)
    return {"policy": name, "params": sum(p.numel() for p in model.parameters()),
            "real_word_fraction": round(real_word_fraction(texts), 4),
            "distinct_2": round(distinct_2(texts), 4),
            "heldout_loss": round(loss, 4), "heldout_bits_per_char": round(bpc, 4),
            "samples": len(texts), "new_tokens": NEW_TOKENS, "temperature": 1.0, "seed": seed,
            "min_count": MIN_COUNT, "example": OPENINGS[0] + texts[0],
            "torch_threads": torch.get_num_threads()}


def reference() -> dict:
    """The same word figures for real held-out reviews (the ceiling a policy can reach)."""
    _, held = split(imdb_reviews())
    texts = [r.text for r in held[:256]]
    return {"real_word_fraction": round(real_word_fraction(texts), 4), "distinct_2": round(distinct_2(texts), 4)}
