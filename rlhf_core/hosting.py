"""Settings for serving the app to many people at once (a class, a public Space), read from the
environment, and the input rules they imply.

    RLHF_EXPLORER_HOSTED=1              hosted mode: visitors own their runs, inputs are restricted
    RLHF_EXPLORER_RUNS_PER_VISITOR=2    queued or running runs one visitor may have (hosted)
    RLHF_EXPLORER_ALLOW_POLICIES=a,b    hub ids or folders offered as policies besides the embedded zoo
                                        (hosted)
    RLHF_EXPLORER_ALLOW_REWARDS=a,b     hub rewards offered besides the embedded ones, as the Reward
                                        field writes them, e.g. hub:lvwerra/distilbert-imdb (hosted)
    RLHF_EXPLORER_MAX_STEPS=300         longest run a visitor may start (hosted)
    RLHF_EXPLORER_KEEP_HOURS=24         finished runs older than this are pruned (hosted default 24)
    RLHF_EXPLORER_MAX_DISK_MB=2000      the runs folder's cap; the oldest finished runs go first
                                        (hosted default 2000)
    RLHF_EXPLORER_LAB_JOBS=1            lab jobs at once across the server; one per visitor (hosted)
    RLHF_EXPLORER_MAX_PARAMS=500000000  hub models larger than this are refused before any download
                                        (0: no limit); in hosted mode only the allow-list counts
    RLHF_EXPLORER_REWARDS_DIR=rewards   the only folder file: rewards load from when the opt-in
                                        (RLHF_EXPLORER_ALLOW_CODE=1) came from the server's
                                        environment (relative: to the project folder); the
                                        CLI's --allow-code takes any path

A malformed value is an error naming the variable, never a silent default. No UI code here.
"""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import ConfigError

PREFIX = "RLHF_EXPLORER_"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class HostSettings(BaseModel):
    """The operator's settings. Field names are the environment variables without the prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosted: bool = False
    runs_per_visitor: int = Field(2, ge=1, le=100)
    allow_policies: tuple[str, ...] = ()
    allow_rewards: tuple[str, ...] = ()
    max_steps: int = Field(300, ge=1)
    max_pairs: int = Field(1024, ge=2)  # DPO labels its pairs before its first step: cap that wait too
    keep_hours: float | None = Field(None, gt=0)
    max_disk_mb: float | None = Field(None, gt=0)
    lab_jobs: int = Field(1, ge=1, le=64)
    max_params: int = Field(500_000_000, ge=0)
    rewards_dir: str = "rewards"

    @property
    def prune_after_s(self) -> float | None:
        """Finished runs older than this many seconds are pruned (None: kept)."""
        hours = self.keep_hours if self.keep_hours is not None else (24.0 if self.hosted else None)
        return hours * 3600 if hours is not None else None

    @property
    def disk_cap_bytes(self) -> int | None:
        mb = self.max_disk_mb if self.max_disk_mb is not None else (2000.0 if self.hosted else None)
        return int(mb * 1024 * 1024) if mb is not None else None

    @property
    def rewards_folder(self) -> str:
        """The rewards folder's real path; a relative one is taken from the project folder, where
        the workers run, so that the app's check and the worker's load see the same file."""
        return os.path.realpath(os.path.join(PROJECT_ROOT, self.rewards_dir))


def from_env(environ=None) -> HostSettings:
    """Read the settings; a malformed value raises ConfigError naming the variable."""
    environ = os.environ if environ is None else environ
    raw: dict = {}
    for name in HostSettings.model_fields:
        value = environ.get(PREFIX + name.upper())
        if value is None:
            continue
        value = value.strip()
        if name == "hosted":
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"{PREFIX}HOSTED must be 1 or 0, got {value!r}")
            raw[name] = value.lower() in _TRUE
        elif name in ("allow_policies", "allow_rewards"):
            raw[name] = tuple(v.strip() for v in value.split(",") if v.strip())
        elif value:
            raw[name] = value
    try:
        return HostSettings(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigError(f"{PREFIX}{field.upper()}={raw.get(field)!r}: {err['msg']}") from None


@functools.cache
def _cached(key: tuple) -> HostSettings:
    return from_env(dict(key))


def settings() -> HostSettings:
    """The current settings (re-read when the environment changes, e.g. in tests)."""
    return _cached(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(PREFIX))))


def hosted() -> bool:
    return settings().hosted


def may_act(owner: str | None, visitor: str | None) -> bool:
    """Whether `visitor` may stop, retune, delete or cancel something `owner` started: anyone on a
    private server; on a hosted one only the visitor who started it (the one rule for runs and
    lab jobs alike)."""
    return not hosted() or (visitor is not None and owner == visitor)


def _allowed_reward_model(model_id: str, host: HostSettings) -> bool:
    from .rewards import split_hub_reward

    return any(r.startswith("hub:") and split_hub_reward(r[4:])[0] == model_id for r in host.allow_rewards)


def allows_hub_model(model_id: str, host: HostSettings | None = None) -> bool:
    """Whether the operator put this hub model on an allow-list, as a policy or as a reward."""
    host = host or settings()
    return model_id in host.allow_policies or _allowed_reward_model(model_id, host)


def check_run_inputs(cfg, host: HostSettings | None = None) -> None:
    """In hosted mode a visitor may pick only the embedded zoo and the operator's allow-list: no
    free-text hub ids or folders, no hub: reward outside the allow-list, no file: rewards, and no
    run longer than max_steps. Raises ConfigError naming the field. Nothing to check when not hosted."""
    from . import zoo
    from .rewards import split_hub_reward

    host = host or settings()
    if not host.hosted:
        return
    if cfg.policy not in zoo.OFFLINE_POLICIES and cfg.policy not in host.allow_policies:
        raise ConfigError(f"policy: '{cfg.policy}' is not offered on this server; choose one of "
                          f"{', '.join([*zoo.OFFLINE_POLICIES, *host.allow_policies])}")
    kind, _, arg = cfg.reward.partition(":")
    if kind == "file":
        raise ConfigError("reward: file: rewards run code and are off on a hosted server")
    if kind == "hub" and not _allowed_reward_model(split_hub_reward(arg)[0], host):
        raise ConfigError(f"reward: '{cfg.reward}' is not offered on this server (the operator's allow-list: "
                          f"{', '.join(host.allow_rewards) or 'empty'})")
    if cfg.steps > host.max_steps:
        raise ConfigError(f"steps: {cfg.steps} is more than this server allows per run ({host.max_steps})")
    if cfg.algorithm == "dpo" and cfg.pairs > host.max_pairs:
        raise ConfigError(f"pairs: {cfg.pairs} is more than this server allows per run ({host.max_pairs})")
