"""RLOO over TRL's RLOOTrainer: REINFORCE with a leave-one-out baseline. Each completion's
advantage is its reward minus the mean reward of the other completions of the same prompt;
TRL folds the KL penalty (beta) into the reward. Same knob mapping as GRPO (grpo.py)."""

from __future__ import annotations

from .grpo import GroupAdapter


def build(cfg, policy, tok, recorder, prompts, output_dir, device, callbacks) -> GroupAdapter:
    from trl import RLOOConfig, RLOOTrainer

    return GroupAdapter(RLOOTrainer, RLOOConfig, cfg, policy, tok, recorder, prompts, output_dir, device, callbacks)
