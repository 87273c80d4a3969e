"""DPO over TRL's DPOTrainer: offline preference optimisation on pairs labelled once, at the start.

DPO never samples to learn. It raises the policy's log-ratio (against the frozen reference) of each
chosen answer over its rejected one, with beta as the leash: the loss is
-log sigmoid(beta * (log-ratio chosen - log-ratio rejected)). So that a DPO run reads on the same
axes as GRPO, RLOO and PPO runs, fresh completions are sampled every `sample_every` steps on new
prompts, scored by the run's reward and measured for KL exactly as the online algorithms' are.

- Pairs (`pairs`, `pair_source`): `policy` samples two completions per prompt from the starting
  policy and lets the reward pick the chosen one (ties are dropped, as they carry no preference);
  `reviews` takes the ending of a positive IMDB review as chosen over a negative one's, so the
  labels are the reviewers' star ratings and the reward only scores the fresh samples.
- One step is one optimizer step on prompts_per_step x generations_per_prompt pairs; the steps
  cycle through the pairs (an epoch is pairs / batch steps).
- Live beta: trl==1.12.0's DPOTrainer reads `trainer.beta` in every loss computation (args.beta
  only at init), so beta is live as for GRPO. There is no clip range.
- TRL appends the end-of-text token to chosen and rejected answers alike.
"""

from __future__ import annotations

import copy
import random

import torch
from datasets import Dataset
from transformers import TrainerCallback

from ..config import ConfigError, RunConfig
from .common import RolloutRecorder, lora_config, trl_common_kwargs

DPO_METRIC_KEYS = {
    "entropy": "entropy",  # of the policy on the pairs' answers
    "policy_loss": "loss",
    "preference_margin": "rewards/margins",
    "preference_accuracy": "rewards/accuracies",
}
# attempts at untied policy pairs before giving up: a reward that scores most texts alike (a
# keyword reward on a policy that never writes the word) cannot label pairs
PAIR_ROUNDS = 8


def sample_completions(model, tok, prompts: list[str], n: int, cfg: RunConfig):
    """n completions per prompt: (prompts repeated, completion texts, prompt ids, completion ids).
    Each completion's ids end at its first end-of-text token (kept), as TRL's samplers do."""
    was_training = model.training
    model.eval()
    tok.padding_side = "left"
    batch = [p for p in prompts for _ in range(n)]
    enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(next(model.parameters()).device)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0,
                             max_new_tokens=cfg.response_length, min_new_tokens=cfg.min_response_length or None,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if was_training:
        model.train()
    width = enc["input_ids"].shape[1]
    prompt_ids = [ids[m.bool()].tolist() for ids, m in zip(enc["input_ids"].cpu(), enc["attention_mask"].cpu())]
    completion_ids = []
    for row in out[:, width:].tolist():
        end = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
        completion_ids.append(row[:end])
    texts = tok.batch_decode(completion_ids, skip_special_tokens=True)
    return batch, texts, prompt_ids, completion_ids


def policy_pairs(cfg: RunConfig, policy, tok, reward, prompts: list[str]) -> tuple[list[dict], dict]:
    """Two samples per prompt from the starting policy; the reward's preferred one is chosen."""
    rng = random.Random(cfg.seed)
    pairs: list[dict] = []
    ties = 0
    for _ in range(PAIR_ROUNDS):
        chunk = rng.sample(prompts, min(len(prompts), max(8, 2 * (cfg.pairs - len(pairs)))))
        batch, texts, _, _ = sample_completions(policy, tok, chunk, 2, cfg)
        scores = reward(texts, prompts=batch)
        for i in range(0, len(texts), 2):
            a, b = scores[i], scores[i + 1]
            if a == b:
                ties += 1
                continue
            win, lose = (i, i + 1) if a > b else (i + 1, i)
            pairs.append({"prompt": batch[i], "chosen": texts[win], "rejected": texts[lose],
                          "chosen_reward": scores[win], "rejected_reward": scores[lose]})
            if len(pairs) == cfg.pairs:
                return pairs, {"ties_dropped": ties}
    raise ConfigError(f"pairs: only {len(pairs)} of {cfg.pairs} untied pairs after sampling "
                      f"{PAIR_ROUNDS} rounds; reward '{reward.name}' scored {ties} pairs of the policy's samples "
                      "alike. Use fewer pairs, another reward, or pair_source: reviews")


def review_pairs(cfg: RunConfig, tok, prompts: list[str]) -> tuple[list[dict], dict]:
    """A review opening as the prompt; a positive review's ending chosen over a negative one's."""
    from ..zoo.build import preference_pairs
    from ..zoo.data import imdb_reviews, split

    rng = random.Random(cfg.seed)
    train, _ = split(imdb_reviews())
    endings = preference_pairs(rng.sample(train, min(len(train), 4 * cfg.pairs + 64)), cfg.pairs, tok, rng,
                               max(1, cfg.response_length // 2), cfg.response_length)
    if len(endings) < cfg.pairs:
        raise ConfigError(f"pairs: only {len(endings)} review pairs could be made, asked for {cfg.pairs}")
    return [{"prompt": rng.choice(prompts), "chosen": " " + e["chosen"], "rejected": " " + e["rejected"]}
            for e in endings], {}


def make_pairs(cfg: RunConfig, policy, tok, reward, prompts: list[str]) -> tuple[list[dict], dict]:
    """The run's offline preference data, and a summary for the store's meta."""
    if cfg.pair_source == "policy":
        pairs, extra = policy_pairs(cfg, policy, tok, reward, prompts)
    else:
        pairs, extra = review_pairs(cfg, tok, prompts)
    summary = {"source": cfg.pair_source, "count": len(pairs), **extra,
               "examples": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in p.items()}
                            for p in pairs[:6]]}
    return pairs, summary


class FreshSamples(TrainerCallback):
    """Before every `sample_every`-th step (and the first), samples new completions from the
    current policy and scores them through the recorder (reward + KL against the reference), so
    the step's stored row carries reward and KL as an online algorithm's does."""

    def __init__(self, cfg: RunConfig, tok, recorder: RolloutRecorder, prompts: list[str]):
        self.cfg, self.tok, self.recorder, self.prompts = cfg, tok, recorder, prompts
        self.rng = random.Random(cfg.seed + 1)

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step % self.cfg.sample_every:
            return
        chunk = self.rng.sample(self.prompts, self.cfg.prompts_per_step)
        batch, texts, prompt_ids, completion_ids = sample_completions(
            self.recorder.policy, self.tok, chunk, self.cfg.generations_per_prompt, self.cfg)
        self.recorder.score(batch, texts, prompt_ids, completion_ids)


class DPOAdapter:
    metric_keys = DPO_METRIC_KEYS
    rollout_steps = 1

    def __init__(self, cfg: RunConfig, policy, tok, recorder: RolloutRecorder, prompts: list[str],
                 output_dir: str, device: str, callbacks, pairs: list[dict] | None = None):
        from trl import DPOConfig, DPOTrainer

        self.cfg = cfg
        if pairs is None:  # a run makes its own; a lab hands in pairs it labelled itself
            pairs, summary = make_pairs(cfg, policy, tok, recorder.reward, prompts)
            self.meta = {"dpo_pairs": summary}
        else:
            self.meta = {}
        args = DPOConfig(
            **trl_common_kwargs(cfg, output_dir, device),
            max_steps=cfg.steps,
            beta=cfg.kl_coef,
            disable_dropout=True,
            max_length=None,  # prompts and answers are short; nothing to truncate
        )
        peft_config = lora_config(cfg)
        # with LoRA the reference is the policy with its adapters off (TRL and our KL alike)
        ref = None if peft_config else copy.deepcopy(policy).eval()
        self.trainer = DPOTrainer(
            model=policy,
            ref_model=ref,
            args=args,
            train_dataset=Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]),
            processing_class=tok,
            callbacks=[FreshSamples(cfg, tok, recorder, prompts), *callbacks],
            peft_config=peft_config,
        )
        recorder.policy = self.trainer.accelerator.unwrap_model(self.trainer.model)
        recorder.ref = self.trainer.ref_model

    def train(self) -> None:
        self.trainer.train()

    # Live knobs: DPOTrainer reads self.beta in every loss computation.
    def set_kl_coef(self, value: float) -> None:
        self.trainer.beta = float(value)

    def set_clip_range(self, value: float) -> None:
        raise ValueError("DPO has no clip range")

    def knobs(self) -> tuple[float, float | None]:
        return float(self.trainer.beta), None


def build(cfg, policy, tok, recorder, prompts, output_dir, device, callbacks, pairs=None) -> DPOAdapter:
    return DPOAdapter(cfg, policy, tok, recorder, prompts, output_dir, device, callbacks, pairs)
