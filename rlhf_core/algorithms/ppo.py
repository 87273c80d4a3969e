"""PPO over TRL's PPOTrainer (trl.experimental.ppo, trl <= 1.12): clipped policy gradient with a
learned value head and GAE advantages; the KL penalty to the reference model is paid per token
inside the reward.

PPOTrainer only accepts an nn.Module reward model (backbone + `.score`), so any Python reward is
wrapped in `PythonRewardModel`, which decodes the sampled text, calls the reward and records the
samples (PPO logs none itself). Knob mapping: kl_coef -> kl_coef, clip_range -> cliprange,
update_epochs -> num_ppo_epochs; one step = one PPO update on prompts_per_step x
generations_per_prompt fresh prompts.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch
from datasets import Dataset
from torch import nn

from .. import zoo
from ..config import RunConfig
from .common import RolloutRecorder, lora_config, per_process_batch, trl_common_kwargs

PPO_METRIC_KEYS = {
    "entropy": "policy/entropy_avg",
    "clip_fraction": "policy/clipfrac_avg",
    "approx_kl": "policy/approxkl_avg",
    "policy_loss": "loss/policy_avg",
    "value_loss": "loss/value_avg",
}


class _RewardBackbone(nn.Module):
    def __init__(self, owner: "PythonRewardModel"):
        super().__init__()
        self._owner = [owner]  # a list, so the owner is not registered as a submodule (no cycle)

    def forward(self, input_ids, attention_mask, **_):
        owner = self._owner[0]
        p = owner.prompt_length
        prompt_ids, completion_ids = [], []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            prompt_ids.append([t for t, m in zip(ids[:p], mask[:p]) if m])
            completion_ids.append([t for t, m in zip(ids[p:], mask[p:]) if m])
        tok = owner.tok
        prompts = tok.batch_decode(prompt_ids, skip_special_tokens=True)
        completions = tok.batch_decode(completion_ids, skip_special_tokens=True)
        scores = owner.recorder.score(prompts, completions, prompt_ids, completion_ids)
        value = torch.tensor(scores, dtype=torch.float32, device=input_ids.device)
        # TRL reads score(hidden)[b, last_token]; broadcasting the score over positions serves any index.
        hidden = value[:, None, None].expand(-1, input_ids.shape[1], 1)
        return SimpleNamespace(hidden_states=(hidden,))


class PythonRewardModel(nn.Module):
    """Presents a batched Python reward as the sequence-classifier shape PPOTrainer expects."""

    base_model_prefix = "backbone"

    def __init__(self, recorder: RolloutRecorder, tok, prompt_length: int):
        super().__init__()
        self.recorder, self.tok, self.prompt_length = recorder, tok, prompt_length
        self.backbone = _RewardBackbone(self)
        self.score = nn.Identity()


class PPOAdapter:
    metric_keys = PPO_METRIC_KEYS
    rollout_steps = 1

    def __init__(self, cfg: RunConfig, policy, tok, recorder: RolloutRecorder, prompt_ids: list[list[int]],
                 policy_path: str, output_dir: str, device: str, callbacks):
        from transformers import AutoModelForSequenceClassification
        from trl.experimental.ppo import PPOConfig, PPOTrainer
        from trl.trainer.utils import disable_dropout_in_model

        batch = cfg.prompts_per_step * cfg.generations_per_prompt
        common = trl_common_kwargs(cfg, output_dir, device)
        args = PPOConfig(
            **common,
            total_episodes=cfg.steps * batch,
            num_mini_batches=1,
            local_rollout_forward_batch_size=per_process_batch(cfg),
            num_ppo_epochs=cfg.update_epochs,
            response_length=cfg.response_length,
            temperature=cfg.temperature,
            kl_coef=cfg.kl_coef,
            cliprange=cfg.clip_range,
            vf_coef=cfg.vf_coef,
            cliprange_value=cfg.cliprange_value,
            gamma=cfg.gamma,
            lam=cfg.lam,
            kl_estimator=cfg.kl_estimator,
            stop_token="eos",
            num_sample_generations=0,
        )
        dtype = next(policy.parameters()).dtype
        value_model = AutoModelForSequenceClassification.from_pretrained(
            policy_path, num_labels=1, dtype=dtype, **zoo.reload_kwargs(cfg.policy))
        value_model.config.pad_token_id = tok.pad_token_id
        peft_config = lora_config(cfg)
        # with LoRA the reference is the policy with its adapters off: no second copy
        ref = None if peft_config else copy.deepcopy(policy).eval()
        for m in (policy, value_model, ref):
            if m is not None:
                disable_dropout_in_model(m)
        self.trainer = PPOTrainer(
            args=args,
            processing_class=tok,
            model=policy,
            ref_model=ref,
            reward_model=PythonRewardModel(recorder, tok, cfg.prompt_tokens),
            value_model=value_model,
            # every prompt has exactly prompt_tokens tokens, so the reward adapter knows where
            # the completion starts (TRL passes it prompt+completion without the boundary)
            train_dataset=Dataset.from_dict({"input_ids": [list(p) for p in prompt_ids]}),
            callbacks=callbacks,
            peft_config=peft_config,
        )
        recorder.policy = self.trainer.accelerator.unwrap_model(self.trainer.model).policy
        recorder.ref = self.trainer.ref_model

    def train(self) -> None:
        self.trainer.train()

    # Live knobs: PPOTrainer reads args.kl_coef and args.cliprange on every update.
    def set_kl_coef(self, value: float) -> None:
        self.trainer.args.kl_coef = float(value)

    def set_clip_range(self, value: float) -> None:
        self.trainer.args.cliprange = float(value)

    def knobs(self) -> tuple[float, float]:
        return float(self.trainer.args.kl_coef), float(self.trainer.args.cliprange)


def build(cfg, policy, tok, recorder, prompt_ids, policy_path, output_dir, device, callbacks) -> PPOAdapter:
    return PPOAdapter(cfg, policy, tok, recorder, prompt_ids, policy_path, output_dir, device, callbacks)
