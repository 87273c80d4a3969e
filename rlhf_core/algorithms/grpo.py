"""GRPO over TRL's GRPOTrainer: a group of completions per prompt, each scored against its
group's mean (no value network), with a KL penalty to the reference model inside the loss.

Knob mapping: kl_coef -> beta, clip_range -> epsilon, update_epochs -> num_iterations,
prompts_per_step x generations_per_prompt -> per_device_train_batch_size; loss_type and scale_rewards
pass through unchanged (GRPO only).
RLOO (rloo.py) shares this adapter: its trainer has the same shape and live attributes.
"""

from __future__ import annotations

from datasets import Dataset

from .. import zoo
from ..config import RunConfig
from .common import RolloutRecorder, adapters_disabled, is_peft, lora_config, trl_common_kwargs

GROUP_METRIC_KEYS = {
    "entropy": "entropy",
    "clip_fraction": "clip_ratio/region_mean",
    "policy_loss": "loss",
}


class GroupAdapter:
    """Adapter for GRPO-shaped TRL trainers (GRPOTrainer, RLOOTrainer)."""

    metric_keys = GROUP_METRIC_KEYS

    def __init__(self, trainer_cls, config_cls, cfg: RunConfig, policy, tok, recorder: RolloutRecorder,
                 prompts: list[str], output_dir: str, device: str, callbacks, extra_args: dict | None = None):
        import torch

        self.cfg = cfg
        self.rollout_steps = cfg.update_epochs  # optimizer steps that reuse one rollout
        # TRL builds the reference model only when beta != 0 at construction, and crashes if beta is
        # raised later. Build it with a nonzero beta, then set the user's value (0 allowed) below.
        args = config_cls(
            **trl_common_kwargs(cfg, output_dir, device),
            max_steps=cfg.steps * cfg.update_epochs,
            num_generations=cfg.generations_per_prompt,
            max_completion_length=cfg.response_length,
            temperature=cfg.temperature,
            generation_kwargs={"min_new_tokens": cfg.min_response_length} if cfg.min_response_length else None,
            beta=cfg.kl_coef or 1.0,
            epsilon=cfg.clip_range,
            num_iterations=cfg.update_epochs,
            steps_per_generation=1,
            disable_dropout=True,
            log_completions=False,
            # TRL reloads the reference model from the policy's name with these
            model_init_kwargs={"dtype": torch.bfloat16 if device == "cuda" else torch.float32,
                               **zoo.reload_kwargs(cfg.policy)},
            **(extra_args or {}),
        )
        recorder_ref = recorder

        def reward_fn(prompts, completions, completion_ids, **_):
            prompt_ids = tok(list(prompts), add_special_tokens=False)["input_ids"]
            return recorder_ref.score(list(prompts), list(completions), prompt_ids, completion_ids)

        reward_fn.__name__ = f"reward_{recorder.reward.name.split(':')[0].replace('-', '_')}"
        self.trainer = trainer_cls(
            model=policy,
            reward_funcs=[reward_fn],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            processing_class=tok,
            reward_processing_classes=[tok],
            callbacks=callbacks,
            peft_config=lora_config(cfg),  # with LoRA, TRL's reference is the policy with adapters off
        )
        self.set_kl_coef(cfg.kl_coef)
        recorder.policy = self.trainer.accelerator.unwrap_model(self.trainer.model)
        recorder.ref = self.trainer.ref_model
        recorder.measure_kl_in_score = False
        _capture_logps(self.trainer, recorder)

    def train(self) -> None:
        self.trainer.train()

    # Live knobs: TRL reads these trainer attributes every step (args.beta is read only at init).
    def set_kl_coef(self, value: float) -> None:
        self.trainer.beta = float(value)

    def set_clip_range(self, value: float) -> None:
        self.trainer.epsilon_low = self.trainer.epsilon_high = float(value)

    def knobs(self) -> tuple[float, float]:
        return float(self.trainer.beta), float(self.trainer.epsilon_low)


def _capture_logps(trainer, recorder: RolloutRecorder) -> None:
    """Record each rollout's per-token log pi and log pi_ref from forward passes TRL makes anyway,
    so that measuring KL costs (almost) nothing extra.

    - log pi_ref: TRL's reference pass while scoring (made when beta != 0; else we make it). With
      LoRA there is no reference model: the pass runs on the policy with its adapters off.
    - log pi: RLOO, and GRPO with update_epochs > 1, compute it while scoring. GRPO with one
      epoch computes it only inside the loss, on the same weights; we take that pass (detached)
      and match its rows to the rollout's by content, since TRL shuffles the batch in between.
    This wraps two methods of the pinned trl==1.12.0 trainers."""
    import torch

    compute_logps = trainer._get_per_token_logps_and_entropies
    policy = trainer.accelerator.unwrap_model(trainer.model)
    lora = is_peft(policy)

    def is_reference_pass(model) -> bool:
        return model is trainer.ref_model if not lora else adapters_disabled(policy)
    generate_and_score = trainer._generate_and_score_completions
    captured: dict = {}
    pending: dict = {}

    def attach(policy_logps):
        recorder.attach_logps(pending["completion_ids"], pending["completion_mask"], policy_logps, pending["ref"])
        pending.clear()

    def logps_hook(model, input_ids, *args, **kwargs):
        out = compute_logps(model, input_ids, *args, **kwargs)
        if captured.get("active") and not torch.is_grad_enabled():
            captured["ref" if is_reference_pass(model) else "policy"] = out[0]
        elif pending and torch.is_grad_enabled() and not is_reference_pass(model):
            rows = {tuple(r): i for i, r in enumerate(input_ids.tolist())}
            order = [rows.get(k) for k in pending["keys"]]
            if None not in order:
                attach(out[0].detach()[torch.tensor(order, device=out[0].device)])
        return out

    def generate_hook(*args, **kwargs):
        if pending:  # a rollout whose loss pass we never saw: measure it directly
            with torch.no_grad():
                attach(compute_logps(trainer.model, pending["ids"], pending["mask"], pending["keep"],
                                     pending["ids"].size(0))[0])
        captured.clear()
        captured["active"] = True
        try:
            output = generate_and_score(*args, **kwargs)
        finally:
            captured["active"] = False
        ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        keep = output["completion_ids"].size(1)
        if "ref" not in captured and (trainer.ref_model is not None or lora):  # beta == 0: TRL skipped it
            with torch.no_grad():
                if lora:
                    with policy.disable_adapter():
                        captured["ref"] = compute_logps(trainer.model, ids, mask, keep, ids.size(0))[0]
                else:
                    captured["ref"] = compute_logps(trainer.ref_model, ids, mask, keep, ids.size(0))[0]
        if "ref" not in captured:
            return output
        pending.update(completion_ids=output["completion_ids"], completion_mask=output["completion_mask"],
                       ref=captured["ref"], ids=ids, mask=mask, keep=keep,
                       keys=[tuple(r) for r in ids.tolist()])
        if "policy" in captured:
            attach(captured["policy"])
        return output

    trainer._get_per_token_logps_and_entropies = logps_hook
    trainer._generate_and_score_completions = generate_hook


def build(cfg: RunConfig, policy, tok, recorder, prompts, output_dir, device, callbacks) -> GroupAdapter:
    from trl import GRPOConfig, GRPOTrainer

    # set even at TRL's defaults, so that a later TRL default cannot change what a run's config says
    return GroupAdapter(GRPOTrainer, GRPOConfig, cfg, policy, tok, recorder, prompts, output_dir, device, callbacks,
                        extra_args={"loss_type": cfg.loss_type, "scale_rewards": cfg.scale_rewards})
