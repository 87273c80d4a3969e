"""The controlled token task shared by the T2, T4 and T5 labs: a hidden automaton whose rule is known,
so every emitted token can be marked right or wrong.

Tokens 0..K-1 form the *home* set A; the expert walks one fixed cycle through A (rule 0), starting
from a random home token. Tokens K..V-1 are the *away* set B. The automaton has a phase bit:

- phase 0 (the only phase experts ever visit): the right next token is `home_next[last]`;
- the first away token sends the automaton to phase 1 for good (with `trap=True`), where the right
  next token is `away_next[last]`, always an away token.

So a learner that slips into B leaves the demonstrations' distribution and must know rule 1 to stop
erring: the behaviour-cloning trap of Ross & Bagnell. With `trap=False` phase 1 does not exist and
rule 0 is defined on every token (away tokens point back into the cycle), which is the plain
"find the right token among V" problem used for the action-space and stability labs.

The phase is visible to a learner that reads the whole prefix (has any away token appeared?), so an
online learner can, in principle, learn to recover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TokenTask:
    vocab_size: int = 16      # V: task tokens 0..V-1
    home_size: int = 8        # K: the expert's cycle lives on tokens 0..K-1
    trap: bool = True         # away tokens switch to phase 1 for good
    seed: int = 0             # which automaton (independent of the learners' seeds)

    def __post_init__(self):
        if not 2 <= self.home_size <= self.vocab_size:
            raise ValueError(f"home_size must be in [2, vocab_size], got {self.home_size}")
        rng = np.random.default_rng(10_000 + self.seed)
        V, K = self.vocab_size, self.home_size
        cycle = rng.permutation(K)
        self.home_next = np.empty(V, dtype=np.int64)
        self.home_next[cycle] = np.roll(cycle, -1)  # one cycle through every home token
        # off the cycle, rule 0 points back home (used when trap=False)
        self.home_next[K:] = rng.integers(0, K, size=V - K)
        self.away_next = np.empty(V, dtype=np.int64)
        if V > K:
            away = K + rng.permutation(V - K)
            self.away_next[away] = np.roll(away, -1)
            self.away_next[:K] = rng.integers(K, V, size=K)
        else:
            self.away_next[:] = self.home_next

    # ---- the rule --------------------------------------------------------------------------------
    def expert_next(self, last: np.ndarray, phase: np.ndarray) -> np.ndarray:
        return np.where(phase.astype(bool), self.away_next[last], self.home_next[last])

    def next_phase(self, phase: np.ndarray, token: np.ndarray) -> np.ndarray:
        if not self.trap:
            return np.zeros_like(phase)
        return phase | (token >= self.home_size)

    def starts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.home_size, size=n)

    def demonstrations(self, n: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
        """n expert sequences: a random home start token followed by `horizon` expert tokens."""
        seqs = np.empty((n, horizon + 1), dtype=np.int64)
        seqs[:, 0] = self.starts(n, rng)
        phase = np.zeros(n, dtype=np.int64)
        for t in range(horizon):
            seqs[:, t + 1] = self.expert_next(seqs[:, t], phase)
            phase = self.next_phase(phase, seqs[:, t + 1])
        return seqs

    def judge(self, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For sequences [start, x1..xT]: (mistake[n, T], expert_label[n, T]) where expert_label[t] is
        what the expert would have emitted after the learner's own prefix (DAgger's relabelling)."""
        n, width = seqs.shape
        phase = np.zeros(n, dtype=np.int64)
        labels = np.empty((n, width - 1), dtype=np.int64)
        for t in range(width - 1):
            labels[:, t] = self.expert_next(seqs[:, t], phase)
            phase = self.next_phase(phase, seqs[:, t + 1])
        return seqs[:, 1:] != labels, labels


# ---- a tiny GPT-2 policy over the task tokens (used with TRL's SFTTrainer) ---------------------------

def make_tokenizer(vocab_size: int):
    """A word-level tokenizer whose ids are the task tokens, plus one pad token (id V)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    vocab["<pad>"] = vocab_size
    core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<pad>")
    return tok


def make_policy(vocab_size: int, width: int, layers: int, max_len: int, seed: int):
    """A fresh GPT-2 with the given width and depth; dropout off (it only slows a tiny model)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size + 1, n_positions=max_len, n_embd=width, n_layer=layers,
                     n_head=max(1, width // 32), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=vocab_size, eos_token_id=vocab_size, pad_token_id=vocab_size)
    return GPT2LMHeadModel(cfg)


def rollout(model, task: TokenTask, starts: np.ndarray, horizon: int, slip: float,
            rng: np.random.Generator, batch: int = 512) -> np.ndarray:
    """The learner's own sequences: greedy tokens, except that with probability `slip` per step a
    uniformly random task token is emitted instead (the per-step error rate epsilon of the analysis).
    Returns [n, horizon + 1] including the start token."""
    import torch

    model.eval()
    out = []
    V = task.vocab_size
    with torch.no_grad():
        for lo in range(0, len(starts), batch):
            s = torch.as_tensor(starts[lo:lo + batch]).unsqueeze(1)
            n = len(s)
            slips = torch.as_tensor(rng.random((n, horizon)) < slip)
            noise = torch.as_tensor(rng.integers(0, V, size=(n, horizon)))
            seq, past = s, None
            inp = s
            for t in range(horizon):
                o = model(input_ids=inp, past_key_values=past, use_cache=True)
                past = o.past_key_values
                greedy = o.logits[:, -1, :V].argmax(-1)
                tok = torch.where(slips[:, t], noise[:, t], greedy)
                seq = torch.cat([seq, tok.unsqueeze(1)], 1)
                inp = tok.unsqueeze(1)
            out.append(seq.numpy())
    return np.concatenate(out)
