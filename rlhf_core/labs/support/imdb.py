"""Shared pieces of the IMDB labs (T1, T3): demonstrations, preference pairs, reward models trained
with TRL's RewardTrainer, sampling, KL from a reference, and online RL through the engine's GRPO.

The *gold* reward is the embedded `gold-rm`; it stands in for expensive human judgement. It is
independent of every proxy: it learnt from its own half of the training reviews, and every review a
lab hands out as "training reviews" (`reviews()`) comes from the other half, which it never saw.
Proxies are trained here on small label budgets, as in Gao et al. 2022.
Reward models score the completion only, exactly as the playground's runs do.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Callable

from .common import lab_scratch_dir

ENDING_TOKENS = (16, 48)  # preference-pair endings: as short as RL completions, quick to train on


@dataclass
class Setup:
    """What the IMDB labs start from: the base policy, its tokenizer, the gold judge and the reviews."""

    base: object
    tok: object
    gold: Callable[[list[str]], list[float]]
    train_reviews: list
    held_reviews: list


def setup(threads: int, seed: int) -> Setup:
    """Threads and seeds, quiet libraries, then load everything the IMDB labs share."""
    from .common import quiet_libraries, setup_torch

    setup_torch(threads, seed)
    quiet_libraries()
    base, tok = load_policy("imdb-tiny")
    train_reviews, held_reviews = reviews()
    return Setup(base, tok, gold_scorer(), train_reviews, held_reviews)


def load_policy(name: str = "imdb-tiny"):
    import torch

    from ... import zoo

    return zoo.load_policy(name, dtype=torch.float32)


def gold_scorer(name: str = "gold-rm"):
    """A judge: callable texts -> scores. `gold-rm` (sentiment, from its own half of the reviews)
    or `gold-prime-rm` (gold′: the same half plus natural ≻ corrupted pairs, so it sees degeneracy)."""
    from ... import zoo
    from ...rewards import ClassifierScorer

    model, tok = zoo.load_sequence_classifier(name, "reward model")
    return ClassifierScorer(model, tok)


def policy_pairs(policy, tok, prompts: list[str], n: int, judge, seed: int, flip: float = 0.0,
                 response_length: int = 24, groups: list[list[str]] | None = None) -> list[dict]:
    """Gao et al.'s protocol: n pairs of two completions the (initial) policy wrote to the same
    prompt, the one `judge` scores higher is 'chosen'; then a share `flip` of the labels is swapped
    (Coste et al. 2023's label noise), chosen at random. Prompts are cycled through. `groups`: the
    pairs' two completions when already sampled (the same `sample_pairs` for several labellers)."""
    rng = random.Random(seed)
    groups = groups or sample_pairs(policy, tok, prompts, n, seed, response_length)
    scores = batched(judge, [c for g in groups for c in g])
    pairs = []
    for i, (a, b) in enumerate(groups):
        first_wins = scores[2 * i] >= scores[2 * i + 1]
        pairs.append({"chosen": a if first_wins else b, "rejected": b if first_wins else a})
    for i in rng.sample(range(n), round(flip * n)):
        pairs[i] = {"chosen": pairs[i]["rejected"], "rejected": pairs[i]["chosen"]}
    return pairs


def batched(scorer, texts: list[str], batch: int = 128) -> list[float]:
    out: list[float] = []
    for i in range(0, len(texts), batch):
        out += scorer(texts[i:i + batch])
    return out


def reviews():
    """(training reviews the gold judge never saw, held-out reviews)."""
    from ...zoo.data import imdb_reviews, reward_model_split, split

    train, held = split(imdb_reviews())
    _gold_half, proxy_half = reward_model_split(train)
    return proxy_half, held


def sentiment_pairs(train_reviews, n: int, tok, seed: int) -> list[dict]:
    """(chosen=positive, rejected=negative) review endings: the labels IMDB's star ratings give."""
    from ...zoo.build import preference_pairs

    return preference_pairs(train_reviews, n, tok, random.Random(seed), *ENDING_TOKENS)


def gold_labelled_pairs(train_reviews, n: int, tok, gold, seed: int) -> list[dict]:
    """Gao et al.'s synthetic setup: two random review endings, the one the gold RM prefers is
    'chosen'. The proxy learns only from these n gold labels."""
    rng = random.Random(seed)
    pool = rng.sample(list(train_reviews), min(len(train_reviews), 2 * n))

    # only the tail is kept, so tokenize only the tail (48 tokens of English fit well inside 600
    # characters; the first, possibly cut, token is never among the last 48)
    tails = tok([r.text[-600:] for r in pool], add_special_tokens=False)["input_ids"]
    texts = [tok.decode(ids[-rng.randint(*ENDING_TOKENS):]).strip() for ids in tails]
    scores = batched(gold, texts)
    pairs = []
    for i in range(0, len(texts) - 1, 2):
        a, b = (i, i + 1) if scores[i] >= scores[i + 1] else (i + 1, i)
        pairs.append({"chosen": texts[a], "rejected": texts[b]})
    return pairs[:n]


def train_reward_model(pairs: list[dict], tok, epochs: float, lr: float, seed: int, batch_size: int = 16,
                       trainable_last_blocks: int | None = None):
    """A GPT-2 classifier initialised from imdb-tiny, trained by TRL's RewardTrainer (Bradley-Terry).
    `trainable_last_blocks=k` freezes everything below the last k transformer blocks (the score head
    and final norm always train): about 2x faster, a cheaper and cruder proxy."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from ... import zoo
    from ...worker import _quiet_trainer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        zoo.asset_dir("imdb-tiny"), num_labels=1, dtype=torch.float32, use_safetensors=True, trust_remote_code=False)
    model.config.pad_token_id = tok.pad_token_id
    if trainable_last_blocks is not None:
        first_trainable = model.config.n_layer - trainable_last_blocks
        for name, param in model.named_parameters():
            block = name.split(".")[2] if name.startswith("transformer.h.") else None
            param.requires_grad = (block is not None and int(block) >= first_trainable) or \
                not name.startswith("transformer.") or name.startswith("transformer.ln_f")
    args = RewardConfig(
        output_dir=lab_scratch_dir("rm"), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        gradient_checkpointing=False, bf16=False, use_cpu=True, report_to=[], save_strategy="no",
        logging_steps=10_000, seed=seed, data_seed=seed, disable_tqdm=True, dataloader_num_workers=0,
        max_length=ENDING_TOKENS[1] + 8, center_rewards_coefficient=0.01, disable_dropout=True,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok)
    _quiet_trainer(trainer)
    trainer.train()
    return trainer.model.eval()


def sample_pairs(policy, tok, prompts: list[str], n: int, seed: int, response_length: int = 24) -> list[list[str]]:
    """n pairs of completions to the prompts, cycled through (the raw material of `policy_pairs`)."""
    return sample(policy, tok, [prompts[i % len(prompts)] for i in range(n)], 2, response_length, seed)


def gold_trained_proxy(train_reviews, n_labels: int, tok, gold, seed: int, epochs: float = 2.0):
    """A proxy that saw only n gold labels of review endings (last block + head trained)."""
    return proxy_from_pairs(gold_labelled_pairs(train_reviews, n_labels, tok, gold, seed), tok, seed, epochs)


def proxy_from_pairs(pairs: list[dict], tok, seed: int, epochs: float = 2.0):
    """A cheap proxy reward model (last block + head trained) on these labelled pairs."""
    model = train_reward_model(pairs, tok, epochs=epochs, lr=1e-3, seed=seed, trainable_last_blocks=1)
    return scorer_for(model, tok)


def scorer_for(model, tok):
    from ...rewards import ClassifierScorer

    return ClassifierScorer(model, tok)


def pair_accuracy(scorer, pairs: list[dict]) -> float:
    chosen = batched(scorer, [p["chosen"] for p in pairs])
    rejected = batched(scorer, [p["rejected"] for p in pairs])
    return sum(c > r for c, r in zip(chosen, rejected)) / max(1, len(pairs))


def sample(model, tok, prompts: list[str], n: int, max_new_tokens: int, seed: int, batch: int = 256) -> list[list[str]]:
    """n completions per prompt, generated in large batches (a tiny model is cheap per row)."""
    from ...generation import generate

    per_call = max(1, batch // n)
    out: list[list[str]] = []
    for i in range(0, len(prompts), per_call):
        out += generate(model, tok, prompts[i:i + per_call], n, max_new_tokens, 1.0, seed + i)
    return out


def sequence_kl(model, ref, tok, prompts: list[str], completions: list[str], batch: int = 256) -> list[float]:
    """Monte-Carlo KL(model || ref) per completion: sum over its tokens of log model - log ref,
    for completions sampled from `model` (the same estimator as the playground's `kl`)."""
    import torch

    out: list[float] = []
    for i in range(0, len(prompts), batch):
        p_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts[i:i + batch]]
        c_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions[i:i + batch]]
        seqs = [a + b for a, b in zip(p_ids, c_ids)]
        width, cmax = max(len(s) for s in seqs), max(1, max(len(c) for c in c_ids))
        # left padding puts every completion at the end, so only the last cmax+1 logits are needed
        ids = torch.full((len(seqs), width), tok.pad_token_id)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        keep = torch.zeros((len(seqs), cmax), dtype=torch.bool)
        for j, (s, c) in enumerate(zip(seqs, c_ids)):
            ids[j, width - len(s):] = torch.tensor(s)
            mask[j, width - len(s):] = 1
            keep[j, cmax - len(c):] = True
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        target = ids[:, -cmax:]
        with torch.no_grad():
            def logps(m):
                logits = m(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=cmax + 1).logits
                lp = torch.log_softmax(logits[:, :-1].float(), -1)
                return lp.gather(-1, target.unsqueeze(-1)).squeeze(-1)

            diff = (logps(model) - logps(ref)) * keep
        out += diff.sum(1).tolist()
    return out


def train_grpo(policy, tok, reward_fn: Callable[[list[str]], list[float]], reward_name: str, *, steps: int,
               kl_coef: float, learning_rate: float, seed: int, prompts: list[str],
               on_step: Callable[[int, dict, object], None] | None = None, prompts_per_step: int = 4,
               generations_per_prompt: int = 4, response_length: int = 24,
               lr_at: Callable[[int], float] | None = None,
               on_eval: tuple[set[int], Callable[[int, object], None]] | None = None):
    """Online RL with the playground's own GRPO engine (TRL GRPOTrainer); returns the trained policy.
    `on_step(step, metrics, rollout)` sees each step's unified metrics (reward, kl, ...) and the
    rollout's completions, e.g. to score them with the gold judge. `lr_at(step)` sets the learning
    rate of each optimizer step (0-based) instead of the constant `learning_rate`. `on_eval =
    (steps, fn)` calls fn(step, policy) before the first step (step 0) and after each listed step."""
    from transformers import TrainerCallback

    from ...algorithms import grpo
    from ...algorithms.common import RolloutRecorder, average_logs, unified_metrics
    from ...config import RunConfig
    from ...rewards import Reward, RewardSpec
    from ...worker import _quiet_trainer

    cfg = RunConfig(algorithm="grpo", steps=steps, kl_coef=kl_coef, learning_rate=learning_rate, seed=seed,
                    prompts_per_step=prompts_per_step, generations_per_prompt=generations_per_prompt,
                    response_length=response_length, device="cpu", threads=0)
    reward = Reward(RewardSpec(reward_name, "lab reward", (-10.0, 10.0)), lambda texts, _p: reward_fn(list(texts)))
    recorder = RolloutRecorder(reward, tok, cfg.temperature)
    box: dict = {}

    class OnStep(TrainerCallback):
        def __init__(self):
            self.logs: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "train_runtime" in logs:
                return
            self.logs.append(dict(logs))
            adapter = box["adapter"]
            if state.global_step % adapter.rollout_steps:
                return
            raw, self.logs = average_logs(self.logs), []
            roll = recorder.pop()
            kl_c, clip = adapter.knobs()
            metrics = unified_metrics(roll, raw, adapter.metric_keys, kl_c, clip, 0.0)
            step = state.global_step // adapter.rollout_steps
            if on_step:
                on_step(step, metrics, roll)
            if on_eval and step in on_eval[0]:
                on_eval[1](step, kw["model"])

        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            if lr_at:  # after the constant scheduler's own reset of the previous step
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(state.global_step)

        def on_train_begin(self, args, state, control, model=None, **kw):
            if on_eval and 0 in on_eval[0]:
                on_eval[1](0, model)

    adapter = grpo.build(cfg, policy, tok, recorder, prompts, lab_scratch_dir("grpo"), "cpu", [OnStep()])
    box["adapter"] = adapter
    _quiet_trainer(adapter.trainer)
    adapter.train()
    return adapter.trainer.accelerator.unwrap_model(adapter.trainer.model)


def fresh_copy(model):
    """An independent copy of a policy that no Trainer has touched (load_state_dict, not deepcopy:
    a Trainer's wrappers survive a deep copy and keep running the original's weights)."""
    from transformers import AutoModelForCausalLM

    import copy as copy_module

    copy = AutoModelForCausalLM.from_config(model.config)
    copy.load_state_dict(model.state_dict())
    copy.config._name_or_path = model.config._name_or_path
    # from_config leaves use_cache off in the generation config: measured 2.3x slower sampling
    copy.generation_config = copy_module.deepcopy(model.generation_config)
    return copy.eval()


def env_threads() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
