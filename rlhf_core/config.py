"""RunConfig: one validated config for every algorithm, identical from YAML, the CLI and the UI.

Unified knob names (DESIGN.md) map onto each TRL trainer in `rlhf_core.algorithms`.
A "step" is one rollout: `prompts_per_step x generations_per_prompt` completions are sampled,
scored, and then used for `update_epochs` optimisation passes.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Algorithm = Literal["ppo", "grpo", "rloo", "dpo"]
LossType = Literal["dapo", "grpo", "dr_grpo", "bnpo"]  # the first is TRL 1.12's default
ScaleRewards = Literal["group", "batch", "none"]


PRESET_KEY = "preset"  # presets/*.yaml carry {title, description, needs_internet} under this key


class ConfigError(ValueError):
    """An invalid config; the message names the field and the value."""


def finite_and_not_bool(model_cls, v: Any, field_name: str) -> Any:
    """The rule every numeric setting shares (runs and labs): no NaN or infinity, and true/false is
    not a number (YAML and pydantic would both read `true` as 1)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    if isinstance(v, bool) and model_cls.model_fields[field_name].annotation in (int, float):
        raise ValueError("must be a number, not true/false")
    return v


class RunConfig(BaseModel):
    """Every knob of a run. Field descriptions double as CLI and UI help."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    algorithm: Algorithm = Field("grpo", description="RL algorithm: grpo (group-relative, no value net), "
                                 "rloo (leave-one-out baseline), ppo (clipped policy gradient with a learned value head), "
                                 "dpo (offline: direct preference optimisation on pairs labelled once at the start).")
    policy: str = Field("imdb-tiny", description="Policy to train: an embedded name, a hub id or a local folder.")
    reward: str = Field("vader", description="Reward name, e.g. vader, learned-rm, gold-rm, length, keyword:<word>.")
    kl_coef: float = Field(0.05, ge=0, le=100, description="beta: weight of the KL penalty that keeps the policy near "
                           "the reference model. 0 = no leash (watch it reward-hack).")
    clip_range: float = Field(0.2, gt=0, le=100, description="epsilon: how far the probability ratio may move per "
                              "update before PPO clips it. Only matters when update_epochs > 1. DPO has none.")
    learning_rate: float = Field(3e-4, gt=0, le=1, description="Adam learning rate (tiny models like 1e-4 to 1e-3).")
    steps: int = Field(60, ge=1, le=100_000, description="Number of RL steps (rollouts).")
    prompts_per_step: int = Field(4, ge=1, le=4096, description="Distinct prompts sampled per step.")
    generations_per_prompt: int = Field(4, ge=1, le=256, description="Completions per prompt (GRPO/RLOO need >= 2 "
                                        "to form a group baseline).")
    response_length: int = Field(24, ge=1, le=1024, description="Maximum new tokens per completion.")
    min_response_length: int = Field(0, ge=0, le=1024, description="Generate at least this many new tokens per "
                                     "completion (0 = a completion may end early at the end-of-text token). Set "
                                     "equal to response_length, every step generates the same number of tokens, "
                                     "so step times compare like for like (the benchmarks do). Not for PPO.")
    temperature: float = Field(1.0, gt=0, le=10, description="Sampling temperature.")
    update_epochs: int = Field(1, ge=1, le=64, description="Optimisation passes over each rollout (GRPO/RLOO "
                               "num_iterations, PPO num_ppo_epochs). With 1 the importance ratio is 1 and "
                               "clipping is inert. DPO cycles through its pairs instead.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto uses the GPU when one is present (bf16).")
    threads: int = Field(1, ge=0, le=256, description="torch CPU threads for the worker (0 = torch's default). "
                         "1 measured fastest for the tiny policy on a busy 2-core box.")
    prompt_tokens: int = Field(8, ge=2, le=256, description="Length of each review opening used as a prompt, in tokens.")
    lora_rank: int = Field(0, ge=0, le=256, description="LoRA rank (peft). 0 trains every weight; r > 0 trains "
                           "rank-r adapters on peft's default layers for the architecture (attention query "
                           "and value for Llama), and the reference model is the same model with its "
                           "adapters off, so no second copy is held.")
    lora_alpha: float = Field(32.0, gt=0, le=4096, description="LoRA scaling numerator (the update is scaled "
                              "by lora_alpha / lora_rank); used only when lora_rank > 0.")
    max_grad_norm: float = Field(1.0, gt=0, le=1e6, description="Gradient clipping norm.")
    # GRPO extras: how the per-token loss is averaged and how rewards are scaled (TRL's GRPOConfig)
    loss_type: LossType = Field("dapo", description="GRPO: how per-token losses become one number. dapo "
                                "(TRL's default): averaged over every completion token in the batch. grpo: "
                                "averaged within each completion, then over completions, so a short completion's "
                                "tokens weigh more. dr_grpo: summed and divided by a constant (response_length "
                                "x completions), which has no length bias. bnpo: averaged over the tokens of "
                                "the local batch; here one device and one batch, so it equals dapo.")
    scale_rewards: ScaleRewards = Field("group", description="GRPO: how each reward's advantage is scaled. "
                                        "group (TRL's default): divided by the standard deviation of its "
                                        "prompt's group. batch: by the standard deviation of the whole batch. "
                                        "none: not scaled, as Dr. GRPO recommends (scaling favours prompts "
                                        "whose completions score alike).")
    # DPO extras
    pairs: int = Field(64, ge=2, le=100_000, description="DPO: preference pairs made once at the start; "
                       "every step trains on prompts_per_step x generations_per_prompt of them.")
    pair_source: Literal["policy", "reviews"] = Field("policy", description="DPO: where the pairs come from. "
                                                      "policy: two completions per prompt sampled from the starting "
                                                      "policy, the one the reward scores higher is chosen (ties are "
                                                      "dropped). reviews: the ending of a positive IMDB review is "
                                                      "chosen over the ending of a negative one (the reward is not "
                                                      "consulted).")
    sample_every: int = Field(1, ge=1, le=10_000, description="DPO: draw fresh samples (prompts_per_step x "
                              "generations_per_prompt) every this many steps, for the reward and KL curves "
                              "that DPO, which never samples to learn, does not produce itself.")
    # PPO extras
    gamma: float = Field(1.0, ge=0, le=1, description="PPO discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="PPO GAE lambda.")
    vf_coef: float = Field(0.1, ge=0, le=100, description="PPO value-loss weight.")
    cliprange_value: float = Field(0.2, gt=0, le=100, description="PPO value clipping range.")
    kl_estimator: Literal["k1", "k3"] = Field("k1", description="PPO per-token KL estimator (k1 unbiased, k3 low variance).")

    @field_validator("*", mode="before")
    @classmethod
    def _finite_numbers(cls, v: Any, info):
        return finite_and_not_bool(cls, v, info.field_name)

    @field_validator("policy", "reward")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @model_validator(mode="after")
    def _group_size(self):
        if self.algorithm in ("grpo", "rloo") and self.generations_per_prompt < 2:
            raise ValueError(f"generations_per_prompt must be >= 2 for {self.algorithm} "
                             f"(it needs a group to compare against), got {self.generations_per_prompt}")
        if self.min_response_length > self.response_length:
            raise ValueError(f"min_response_length ({self.min_response_length}) must not exceed response_length "
                             f"({self.response_length})")
        if self.algorithm == "dpo" and self.pairs < self.prompts_per_step * self.generations_per_prompt:
            raise ValueError(f"pairs ({self.pairs}) must be at least one step's batch, prompts_per_step x "
                             f"generations_per_prompt = {self.prompts_per_step * self.generations_per_prompt}, for dpo")
        for knob in ("loss_type", "scale_rewards"):
            if self.algorithm != "grpo" and getattr(self, knob) != RunConfig.model_fields[knob].default:
                raise ValueError(f"{knob} {getattr(self, knob)!r} applies to grpo only, not {self.algorithm} "
                                 f"(leave it at {RunConfig.model_fields[knob].default!r})")
        if self.min_response_length and self.algorithm == "ppo":
            raise ValueError("min_response_length is supported for grpo and rloo only, not ppo")
        return self

    # ---- construction helpers -----------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any) -> "RunConfig":
        """Validate a mapping; raise ConfigError whose message names the field and value."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a mapping of knob: value, got {type(data).__name__}")
        try:
            return cls(**data)
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, data)) from None

    @classmethod
    def from_yaml_text(cls, text: str, source: str = "config") -> "RunConfig":
        try:
            data = yaml.safe_load(text)  # safe_load: no python tags, no object construction
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
        if data is None:
            raise ConfigError(f"{source}: the file is empty; it needs at least one knob, e.g. 'algorithm: grpo'")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != PRESET_KEY}  # preset metadata is not a knob
        try:
            return cls.parse(data)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_yaml(cls, path: str) -> "RunConfig":
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(1_000_000)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file") from None
        return cls.from_yaml_text(text, source=path)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(), sort_keys=False)

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        data = self.model_dump()
        data.update(overrides)
        return RunConfig.parse(data)


def parse_set_args(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML scalars (safe), so 0.1 is a float."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if key not in RunConfig.model_fields:
            raise ConfigError(f"{key}: unknown config key (known: {', '.join(RunConfig.model_fields)})")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a single value, got '{raw}'")
        out[key] = value
    return out


def _short_repr(value) -> str:
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 2, 4, 4, 60, 60
    return r.repr(value)


def format_validation_error(e: ValidationError, data: dict | None = None, known: list[str] | None = None,
                            what: str = "config key") -> str:
    """One line per problem: 'kl_coef must be >= 0, got -1'."""
    lines = []
    known = list(RunConfig.model_fields) if known is None else known
    unknown = [".".join(str(p) for p in err.get("loc", ())) for err in e.errors() if err.get("type") == "extra_forbidden"]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        lines.append(f"{shown}: unknown {what}{'s' if len(unknown) > 1 else ''} (known: {', '.join(known)})")
    for err in e.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        got = err.get("input")
        if kind == "extra_forbidden":
            continue
        if kind == "missing":
            lines.append(f"{loc}: required")
            continue
        msg = {
            "greater_than_equal": lambda: f"must be ≥ {ctx.get('ge')}",
            "greater_than": lambda: f"must be > {ctx.get('gt')}",
            "less_than_equal": lambda: f"must be ≤ {ctx.get('le')}",
            "less_than": lambda: f"must be < {ctx.get('lt')}",
            "literal_error": lambda: f"must be one of {ctx.get('expected')}",
            "int_parsing": lambda: "must be a whole number",
            "int_parsing_size": lambda: "is far too large",
            "int_type": lambda: "must be a whole number",
            "int_from_float": lambda: "must be a whole number",
            "float_parsing": lambda: "must be a number",
            "float_type": lambda: "must be a number",
            "string_type": lambda: "must be text",
            "list_type": lambda: "must be a list",
            "too_short": lambda: "must not be empty",
        }.get(kind, lambda: err.get("msg", "invalid").replace("Value error, ", ""))()
        # reprlib: a hostile value (a YAML alias bomb) must not be expanded into the message
        lines.append(f"{loc} {msg}, got {_short_repr(got)}" if loc != "config" else f"{msg}")
    return "; ".join(lines)
