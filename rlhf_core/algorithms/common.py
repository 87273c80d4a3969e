"""Pieces shared by the algorithm adapters: CPU-friendly TRL settings, the rollout recorder
(rewards + samples + KL against the reference model), and the unified metric names."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch

from ..config import RunConfig

# Tokens shown in the per-token log-ratio heatmap: the first few samples of every step.
HEATMAP_SAMPLES = 4


class Diverged(RuntimeError):
    """NaN or inf in a reward or a loss: the run cannot continue."""


class StopRequested(Exception):
    """The user (control file or SIGTERM) asked the run to stop."""


def resolve_device(cfg: RunConfig) -> str:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but no CUDA GPU is available; use device: auto or cpu")
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def trl_common_kwargs(cfg: RunConfig, output_dir: str, device: str) -> dict:
    """Settings every TRL config gets. TRL's defaults target big models on GPUs; for a tiny model
    on a CPU they cost speed (gradient checkpointing, bf16 emulation) or learning (lr 1e-6)."""
    on_gpu = device == "cuda"
    return dict(
        output_dir=output_dir,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",  # a playground run can be long; keep the step size meaningful
        max_grad_norm=cfg.max_grad_norm,
        gradient_checkpointing=False,
        bf16=on_gpu,
        use_cpu=not on_gpu,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        gradient_accumulation_steps=1,
        per_device_train_batch_size=per_process_batch(cfg),
    )


def per_process_batch(cfg: RunConfig) -> int:
    """A step's completions on each process. The config's batch is the whole step's, so the same
    config trains on the same data per step under `accelerate launch --num_processes N`."""
    from accelerate import PartialState

    batch, n = cfg.prompts_per_step * cfg.generations_per_prompt, PartialState().num_processes
    if batch % n:
        raise ValueError(f"prompts_per_step x generations_per_prompt = {batch} must be divisible by the "
                         f"{n} processes of this launch")
    return batch // n


def lora_config(cfg: RunConfig):
    """peft's LoraConfig for `lora_rank > 0`, else None. The adapted layers are peft's default for
    the architecture (the attention query and value projections for Llama, as in the LoRA paper):
    adapting every linear layer made a SmolLM2 step about 1 s slower on 2 CPU cores, most of it in
    generation, where unmerged adapters cost an extra matmul per layer and token."""
    if not cfg.lora_rank:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM")


def adapters_disabled(model) -> bool:
    """Whether a peft model is running with its adapters off, i.e. as the reference model."""
    layer = getattr(model, "_first_tuner_layer", None)
    if layer is None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        layer = next((m for m in model.modules() if isinstance(m, BaseTunerLayer)), False)
        model._first_tuner_layer = layer
    return bool(layer) and layer.disable_adapters


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@dataclass
class Rollout:
    """What the recorder captured for one rollout (one step)."""

    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    kls: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)
    logratios: list[list[float]] = field(default_factory=list)

    def samples(self) -> list[dict]:
        out = []
        for i, (p, c, r) in enumerate(zip(self.prompts, self.completions, self.rewards)):
            s = {"prompt": p, "completion": c, "reward": r, "kl": self.kls[i] if i < len(self.kls) else None}
            if i < len(self.tokens):
                s["tokens"], s["logratios"] = self.tokens[i], self.logratios[i]
            out.append(s)
        return out


class RolloutRecorder:
    """Scores completions with the user's reward and records the rollout for the store.

    It also measures, at sampling time, each completion's log-ratio log pi(y_t)/pi_ref(y_t) per
    token against the frozen reference model. Its sum is the sequence KL estimate shown as `kl`
    for every algorithm alike (TRL's own KL keys use different estimators and averaging, and are
    kept as raw keys)."""

    def __init__(self, reward, tokenizer, temperature: float):
        self.reward = reward
        self.tok = tokenizer
        self.temperature = temperature
        self.policy = None  # set by the adapter once the trainer exists
        self.ref = None  # None with LoRA: the reference is the policy with its adapters off
        # PPO: measure KL with our own forward passes; GRPO/RLOO attach TRL's log-probs instead
        self.measure_kl_in_score = True
        self.current = Rollout()

    def score(self, prompts: list[str], completions: list[str],
              prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[float]:
        rewards = self.reward(completions, prompts=prompts)
        bad = [i for i, r in enumerate(rewards) if not math.isfinite(r)]
        roll = Rollout(list(prompts), list(completions), rewards, lengths=[len(c) for c in completion_ids])
        if self.measure_kl_in_score and self.policy is not None and (self.ref is not None or is_peft(self.policy)):
            self._measure_kl(roll, prompt_ids, completion_ids)
        self.current = roll
        if bad:
            raise Diverged(f"reward '{self.reward.name}' returned {rewards[bad[0]]} for completion {bad[0]} "
                           f"({completions[bad[0]][:60]!r})")
        return rewards

    @torch.no_grad()
    def _measure_kl(self, roll: Rollout, prompt_ids, completion_ids) -> None:
        """Forward both models over prompt+completion (used where the trainer's own log-probs are
        out of reach, i.e. PPO)."""
        seqs = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
        width = max(len(s) for s in seqs)
        cmax = max(1, max(len(c) for c in completion_ids))
        pad = self.tok.pad_token_id
        device = next(self.policy.parameters()).device
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding: every completion ends at the last column
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        target = ids[:, -cmax:]

        def logps(model):
            # logits only where they are needed: the vocabulary projection dominates a tiny model
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                           logits_to_keep=cmax + 1).logits[:, :-1].float()
            return torch.log_softmax(logits / self.temperature, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)

        if self.ref is not None:
            ref_logps = logps(self.ref)
        else:
            with self.policy.disable_adapter():
                ref_logps = logps(self.policy)
        ratio = (logps(self.policy) - ref_logps).cpu()
        # right-align each completion's tokens with its log-ratios
        masks = torch.zeros_like(ratio, dtype=torch.bool)
        for i, c in enumerate(completion_ids):
            masks[i, cmax - len(c):] = True
        self._fill_kl(roll, ratio, masks, [list(c) for c in completion_ids], right_aligned=True)

    def attach_logps(self, completion_ids, completion_mask, policy_logps, ref_logps) -> None:
        """Record KL from per-token log-probs the trainer computed anyway (GRPO/RLOO), so that
        measuring KL costs no extra forward pass where TRL already made it."""
        ratio = (policy_logps.float() - ref_logps.float()).detach().cpu()
        mask = completion_mask.bool().cpu()
        ids = [row[m].tolist() for row, m in zip(completion_ids.cpu(), mask)]
        self.current.kls, self.current.tokens, self.current.logratios = [], [], []
        self._fill_kl(self.current, ratio, mask, ids, right_aligned=False)

    def _fill_kl(self, roll: Rollout, ratio, mask, completion_ids, right_aligned: bool) -> None:
        for i, c in enumerate(completion_ids):
            r = ratio[i][mask[i]] if len(c) else ratio[i, :0]
            roll.kls.append(float(r.sum()))
            if i < HEATMAP_SAMPLES:
                roll.tokens.append([self.tok.decode([t]) for t in c])
                roll.logratios.append([round(float(x), 4) for x in r])

    @staticmethod
    def merge(rollouts: list[Rollout]) -> Rollout:
        """One step's rollouts from every process, in process order. The per-token heatmaps are
        the main process's (they belong to its first samples, which stay first)."""
        first = rollouts[0]
        merged = Rollout(tokens=first.tokens, logratios=first.logratios)
        for roll in rollouts:
            for name in ("prompts", "completions", "rewards", "kls", "lengths"):
                getattr(merged, name).extend(getattr(roll, name))
        return merged

    def pop(self) -> Rollout:
        roll, self.current = self.current, Rollout()
        return roll


def mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(xs) if xs else None


def unified_metrics(roll: Rollout, raw: dict[str, float], key_map: dict[str, str], kl_coef: float,
                    clip_range: float, step_time: float) -> dict:
    """The metric names every UI view and CLI relies on (DESIGN.md), plus TRL's raw keys under trl/."""
    reward = mean(roll.rewards)
    kl = mean(roll.kls)
    out = {
        "reward": reward,
        "reward_std": statistics.pstdev(roll.rewards) if len(roll.rewards) > 1 else (0.0 if roll.rewards else None),
        "kl": kl,
        "objective": None if reward is None or kl is None else reward - kl_coef * kl,
        "response_length": mean(roll.lengths),
        "kl_coef": kl_coef,
        "clip_range": clip_range,
        "step_time": step_time,
    }
    for unified in ("entropy", "clip_fraction", "approx_kl", "policy_loss", "value_loss",
                    "preference_margin", "preference_accuracy"):
        src = key_map.get(unified)
        out[unified] = raw.get(src) if src else None
    out.update({f"trl/{k}": v for k, v in raw.items()})
    return out


def average_logs(logs: list[dict]) -> dict[str, float]:
    """Average TRL's per-optimizer-step logs over the update epochs of one rollout."""
    sums: dict[str, list[float]] = {}
    for log in logs:
        for k, v in log.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                sums.setdefault(k, []).append(float(v))
    return {k: (statistics.fmean(v) if all(math.isfinite(x) for x in v) else float("nan"))
            for k, v in sums.items()}
