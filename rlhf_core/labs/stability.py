"""T5 lab `stability`: PPO's edge is stability, from near-on-policy data and conservative updates.

Paper claim (Sun 2023, takeaway 5): RLHF uses PPO for its stability, "gained from (almost) on-policy
data and conservative policy updates". Both halves are tested here, each where the literature says it
can show: the clip (the conservative update) matters only when a batch is reused, and on-policy data
matters only against data from older policies.

Task: the shared token automaton (`token_task.TokenTask`) as a Gymnasium environment
(`token_env.TokenEnv`): write `length` tokens after a home start token; the reward is given once, at
the end: the fraction of tokens that followed the hidden rule (a sequence-level score, as from a
reward model). The observation is a sufficient statistic of the prefix (see token_env).

Arms (Stable-Baselines3 PPO, identical networks, advantage normalisation, value loss and Adam;
global gradient clipping OFF in the primary condition, since Engstrom et al. 2020 show it can stand
in for the ratio clip; `grad_clip` turns it on):
- `clip_k1_m1` / `noclip_k1_m1` (null): one epoch, one minibatch: one gradient step per batch, taken
  at ratio 1, where the clip is inert. They must match up to float noise.
- `clip_kK` / `noclip_kK` for K in `reuse_epochs` (1, 4, 10; Schulman et al. used 10): K epochs of M
  minibatches over each batch, with the clip (epsilon 0.2) and without it (clip range 1e6).
- `clip_replay3` (on-policy data): clipped PPO that fits each fresh batch together with the last 3
  batches as they were collected (older policies' samples, importance-weighted by the ratio), one
  epoch: the same gradient steps per batch as `clip_k4`, on older data.
- `q_learning` (null) and `q_learning_v64` beside `clip_k1_v64` (effect): DQN with replay, a target
  network and epsilon-greedy, at the same multiples of its own default rate, on 16 tokens and on 64.
  On 16 a tie with one-epoch clipped PPO is the expectation; on 64 PPO's lead should grow (T4).

Every arm sweeps the same learning-rate grid (5 rates over two decades), `seeds` seeds each, the same
env-step budget. Per run: the exact expected reward at checkpoints, KL from the initial policy, the
KL between checkpoints, PPO's own clip fraction and approx-KL per update, and collapse: the final
reward fell below `collapse_fraction` of the run's best, or the policy ended locked (p > 0.99) on
wrong tokens in at least `locked_share` of the states it visits.

An arm's *stable band* is the number of grid rates at which none of its seeds collapsed. Small rates
count for every arm alike (nothing collapses there), so the bands differ at the top of the grid,
where the updates are large. Learning speed does not enter the band: more epochs learn faster at
small rates, which confounded the earlier design's count of "rates where it works".

Checks (registered before the evidence run; docs/LABS.md lists them with each arm's expectation):
`learns` (the grid is fit for the task), `null_arms_match`, `clip_wider_with_reuse` (at K = 10 the
clipped band is at least 2 rates wider), `unclipped_band_shrinks` and `clipped_band_holds` (the dose
over K), `fresh_beats_replay`, and for DQN `value_based_ties_small` and `value_based_falls_behind`
(registered after the others, with their own evidence run). The grid and the replay size were chosen
on a pilot replicate at seed 100, outside the evidence seeds (0-9).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from ..config import ConfigError
from .support.common import LabConfig, Progress, fork_map, knob, lab_workers, rounded, setup_torch
from .support.verdict import Check

NAME = "stability"
NO_CLIP = 1e6  # a clip range no probability ratio reaches: PPO without its trust region
LOCKED_PROB = 0.99  # a state whose policy puts more than this on one wrong token is "locked"
MAX_RUNS = 120  # arms x rates x seeds in one replicate: the interactive budget (about a minute on 2 cores)
PER_SEED = ("final_reward", "best_reward", "collapsed", "locked_share", "largest_drop", "final_entropy",
            "final_kl", "reward_curves", "kl_curves", "update_kl_curves", "clip_fraction", "update_approx_kl",
            "seconds")


@dataclass(frozen=True)
class Arm:
    """One learner of the lab. `role` is how the registered design reads it: `effect` (the literature
    expects it to differ), `null` (the literature expects no difference) or `control`."""

    name: str
    role: str
    expect: str
    clip: bool = True
    epochs: int = 1            # passes over each batch (K)
    minibatches: int | None = None  # gradient steps per pass (M); None: the `minibatches` setting
    replay: int = 0            # older batches (from older policies) fitted beside each fresh one
    dqn: bool = False
    vocab: int | None = None   # the action space V when it is not the `vocab_size` setting


def arms(cfg: "Config") -> list[Arm]:
    """The registered arms for these settings (docs/LABS.md lists them with their expected outcomes)."""
    k_max = max(cfg.reuse_epochs)
    out = [
        Arm("clip_k1_m1", "null", "identical to noclip_k1_m1 up to float noise: with one gradient step per batch the "
            "ratio is 1 where the gradient is taken, so the clip is inert", minibatches=1),
        Arm("noclip_k1_m1", "null", "identical to clip_k1_m1", clip=False, minibatches=1),
    ]
    for k in cfg.reuse_epochs:
        out.append(Arm(f"clip_k{k}", "control" if k == min(cfg.reuse_epochs) else "effect",
                       "works at (about) as many rates as with one epoch: the clip makes reuse safe" if k > 1 else
                       "learns (halfway to perfect at some rate): the grid is fit for the task", epochs=k))
        out.append(Arm(f"noclip_k{k}", "effect" if k > 1 else "control",
                       (f"works at fewer rates than clip_k{k}" if k == k_max else "works at no more rates than with "
                        "fewer epochs") if k > 1 else "the band the reuse arms shrink from", clip=False, epochs=k))
    if cfg.replay_batches:
        out.append(Arm(f"clip_replay{cfg.replay_batches}", "effect",
                       f"works at fewer rates than clip_k{cfg.replay_batches + 1} (the same gradient steps per batch, "
                       f"on fresh data): near-on-policy data is part of PPO's stability",
                       epochs=1, replay=cfg.replay_batches))
    if cfg.dqn:
        out.append(Arm("q_learning", "null", f"on {cfg.vocab_size} tokens DQN works at about as many rates as "
                       "clip_k1 (within one): a tie on a small action space", dqn=True))
        for v in cfg.dqn_vocab_sizes:
            out.append(Arm(f"clip_k1_v{v}", "control", f"clipped PPO, one epoch, on {v} tokens: DQN's partner",
                           vocab=v))
            out.append(Arm(f"q_learning_v{v}", "effect", f"on {v} tokens DQN falls further behind clip_k1_v{v} than "
                           f"on {cfg.vocab_size} (T4: value learning over a larger action space)", dqn=True, vocab=v))
    return out


class Config(LabConfig):
    seeds: int = knob(1, "Seeds per arm and learning rate (each seed: its own network init and sampling; "
                      "the same seeds for every arm and rate).", lo=1, hi=3)
    steps: int = knob(6144, "Env steps (tokens written) per run; every arm gets the same budget.",
                      lo=2048, hi=7168)
    learning_rates: list[float] = knob([0.0003, 0.001, 0.003, 0.01, 0.03], "Adam learning rates every arm sweeps "
                                       "(Q-learning the same multiples of its own default rate, see "
                                       "dqn_rate_divisor). 2 to 6 rates.", lo=1e-5, hi=0.3)
    reuse_epochs: list[int] = knob([1, 4, 10], "Epochs K over each batch, for the clipped and the unclipped arm "
                                   "alike (Schulman et al. 2017 used 10).", lo=1, hi=10)
    minibatches: int = knob(8, "Minibatches M per epoch: gradient steps per pass over a batch. With M > 1 later "
                            "minibatches meet a moved policy, so the clip can act even in one epoch.",
                            choices=[2, 4, 8])
    clip_range: float = knob(0.2, "PPO clip epsilon of the clipped arms.", lo=0.05, hi=0.5)
    grad_clip: float = knob(0.0, "Global gradient-norm clipping (0: off, the primary condition, since Engstrom et "
                            "al. 2020 show it can stand in for the ratio clip; Stable-Baselines3's default is 0.5).",
                            lo=0.0, hi=10.0, advanced=True)
    replay_batches: int = knob(3, "The on-policy-data arm: clipped PPO fits each fresh batch together with this many "
                               "older batches (sampled by older policies, importance-weighted by the clip's ratio) "
                               "in one epoch; 0 drops the arm.", lo=0, hi=9, advanced=True)
    dqn: bool = knob(True, "Also run DQN (off-policy, value-based) over the grid, on `vocab_size` tokens and on each "
                     "of `dqn_vocab_sizes` (with one-epoch clipped PPO beside it there).", advanced=True)
    dqn_vocab_sizes: list[int] = knob([64], "Larger action spaces where DQN and one-epoch clipped PPO also run.",
                                      lo=8, hi=128, advanced=True)
    dqn_rate_divisor: float = knob(3.0, "Q-learning's rates are the PPO rates divided by this: 3 is the ratio of "
                                   "Stable-Baselines3's default rates (PPO 3e-4, DQN 1e-4).", lo=0.1, hi=30.0,
                                   advanced=True)
    vocab_size: int = knob(16, "Task tokens V (the action space); half are home tokens.", lo=4, hi=32)
    length: int = knob(8, "Tokens per sequence (episode length).", lo=4, hi=12)
    reward: str = knob("sequence", "'sequence': the fraction of right tokens, given once at the end (RLHF-like); "
                       "'token': 1/length per right token as it is written.", choices=["sequence", "token"])
    sequences_per_batch: int = knob(64, "Sequences (parallel environments) per PPO batch.", choices=[32, 64],
                                    advanced=True)
    hidden: int = knob(64, "Width of the two hidden layers of every network.", choices=[32, 64, 128],
                       advanced=True)
    dqn_replay_ratio: int = knob(4, "Q-learning: times each stored transition is replayed on average "
                                 "(minibatch 64).", lo=1, hi=8, advanced=True)
    dqn_target_update: int = knob(512, "Q-learning: env steps between target-network copies.", lo=64, hi=4096,
                                  advanced=True)
    dqn_exploration: float = knob(0.3, "Q-learning: share of the budget over which epsilon decays 1 -> 0.05.",
                                  lo=0.05, hi=1.0, advanced=True)
    eval_points: int = knob(16, "Checkpoints per run at which reward and KL are measured (at most one per PPO "
                            "batch).", lo=4, hi=32, advanced=True)
    collapse_fraction: float = knob(0.5, "A run collapsed if its final reward < this share of its best reward ...",
                                    lo=0.1, hi=0.95, advanced=True)
    locked_share: float = knob(0.25, "... or if at least this share of the states it visits is locked onto a "
                               "wrong token (p > 0.99).", lo=0.05, hi=1.0, advanced=True)
    learn_share: float = knob(0.1, "An arm works at a rate when no seed collapsed and its mean final reward "
                              "closed at least this share of the gap from the uniform policy to a perfect one.",
                              lo=0.05, hi=0.9, advanced=True)
    seed: int = knob(0, "First seed; seed k of every arm and rate is seed + k (seed also picks the automaton).",
                     lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads per run.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        rates = sorted(set(self.learning_rates))
        if not 2 <= len(rates) <= 6:
            raise ConfigError(f"learning_rates: 2 to 6 distinct rates (a range needs at least two), got {rates}")
        self.learning_rates = rates
        epochs = sorted(set(self.reuse_epochs))
        if len(epochs) < 2 or epochs[0] != 1:
            raise ConfigError(f"reuse_epochs: at least two values starting at 1 (the dose is measured from one "
                              f"epoch), got {epochs}")
        self.reuse_epochs = epochs
        runs = len(arms(self)) * len(rates) * self.seeds
        if runs > MAX_RUNS:
            raise ConfigError(f"learning_rates: {len(arms(self))} arms x {len(rates)} rates x {self.seeds} seeds = "
                              f"{runs} runs, at most {MAX_RUNS} (about a minute); use fewer rates, epochs or seeds")


# The default is the interactive run (one seed within a minute on 2 cores): every arm, rate and
# check, with one seed per arm and rate. The registered design itself runs with two
# (`lab stability --evidence`), on 5 seeds in scripts/lab_evidence.py.
EVIDENCE = {"seeds": 2}
QUICK = {"steps": 4096, "eval_points": 8, "seeds": 1}
LARGEST = {"seeds": 2, "learning_rates": [0.0003, 0.001, 0.003, 0.01, 0.03], "steps": 7168, "vocab_size": 32, "length": 12,
           "hidden": 128, "sequences_per_batch": 32, "dqn_replay_ratio": 8, "eval_points": 32}


def arm_named(cfg: Config, name: str) -> Arm:
    return next(a for a in arms(cfg) if a.name == name)


def rates(cfg: Config, arm: Arm) -> list[float]:
    """The learning rates an arm sweeps: the grid, or for DQN the grid / dqn_rate_divisor."""
    if arm.dqn:
        return [float(f"{lr / cfg.dqn_rate_divisor:.6g}") for lr in cfg.learning_rates]
    return list(cfg.learning_rates)


def budget(cfg: Config) -> int:
    """Env steps per run: `steps` rounded up to whole PPO batches, so every arm stops at the same step."""
    batch = cfg.sequences_per_batch * cfg.length
    return math.ceil(cfg.steps / batch) * batch


def checkpoint_every(cfg: Config) -> int:
    """Env steps between measurements: whole PPO batches (PPO's policy only changes between batches),
    so every arm is measured at the same steps; about `eval_points` of them."""
    batch = cfg.sequences_per_batch * cfg.length
    return max(1, round(budget(cfg) / cfg.eval_points / batch)) * batch


# ---- the learners -------------------------------------------------------------------------------

def _replay_ppo(replay: int):
    """Stable-Baselines3's PPO, except that every update fits the fresh batch together with the last
    `replay` batches as they were collected (older policies' samples, their log-probabilities and
    advantages): PPO on a replay buffer instead of near-on-policy data. The clip's ratio is taken
    against the policy that sampled each token, as importance sampling requires."""
    from collections import deque

    from stable_baselines3 import PPO
    from stable_baselines3.common.buffers import RolloutBuffer

    fields = ("observations", "actions", "rewards", "returns", "episode_starts", "values", "log_probs", "advantages")

    class ReplayPPO(PPO):
        def _setup_model(self) -> None:
            super()._setup_model()
            self.older: deque = deque(maxlen=replay)

        def train(self) -> None:
            fresh = self.rollout_buffer
            batch = {f: getattr(fresh, f).copy() for f in fields}  # before train() flattens them in place
            if self.older:
                merged = RolloutBuffer(fresh.buffer_size * (len(self.older) + 1), self.observation_space,
                                       self.action_space, device=self.device, gae_lambda=self.gae_lambda,
                                       gamma=self.gamma, n_envs=self.n_envs)
                for f in fields:
                    setattr(merged, f, np.concatenate([old[f] for old in self.older] + [batch[f]]))
                merged.full = True
                self.rollout_buffer = merged
            try:
                super().train()
            finally:
                self.rollout_buffer = fresh
                self.older.append(batch)

    return ReplayPPO


def _make_learner(arm: Arm, cfg: Config, seed: int, learning_rate: float):
    from stable_baselines3 import DQN, PPO

    from .support.token_env import TokenVecEnv

    venv = TokenVecEnv(cfg.sequences_per_batch, vocab_size=arm.vocab or cfg.vocab_size, length=cfg.length,
                       reward=cfg.reward, task_seed=cfg.seed)
    # Adam's multi-tensor ("foreach") update: the same numbers, about a tenth less time for these tiny
    # networks; eps is SB3's own default for each (1e-5 for PPO's policy, torch's 1e-8 for DQN's)
    net = dict(net_arch=[cfg.hidden, cfg.hidden],
               optimizer_kwargs=dict(foreach=True) if arm.dqn else dict(eps=1e-5, foreach=True))
    # gamma 1: an episode is one finite sequence and only its total score matters, as in RLHF
    common = dict(learning_rate=learning_rate, gamma=1.0, seed=seed, device="cpu", policy_kwargs=net, verbose=0,
                  max_grad_norm=cfg.grad_clip or math.inf)
    if arm.dqn:
        # one step of the vector env stores `sequences_per_batch` transitions; replay each `ratio` times
        gradient_steps = max(1, round(cfg.dqn_replay_ratio * cfg.sequences_per_batch / 64))
        return DQN("MlpPolicy", venv, batch_size=64, buffer_size=budget(cfg), learning_starts=budget(cfg) // 16,
                   train_freq=1, gradient_steps=gradient_steps, target_update_interval=cfg.dqn_target_update,
                   exploration_fraction=cfg.dqn_exploration, exploration_initial_eps=1.0,
                   exploration_final_eps=0.05, **common)
    # n_steps = length: a batch is one whole sequence per environment, like an RLHF batch of completions.
    # A minibatch is 1/M of a fresh batch, so the replay arm takes M (R + 1) gradient steps per update,
    # as many as K = R + 1 epochs over fresh data.
    minibatch = cfg.sequences_per_batch * cfg.length // (arm.minibatches or cfg.minibatches)
    learner = _replay_ppo(arm.replay) if arm.replay else PPO
    return learner("MlpPolicy", venv, n_steps=cfg.length, batch_size=minibatch,
                   n_epochs=arm.epochs, clip_range=cfg.clip_range if arm.clip else NO_CLIP,
                   gae_lambda=0.95, ent_coef=0.0, **common)


def _policy_probs(model, dqn: bool, obs, exploration: float | None = None) -> np.ndarray:
    """Action probabilities of the learner's sampling policy on a batch of observations."""
    import torch

    with torch.no_grad():
        obs_t = torch.as_tensor(obs)
        if not dqn:
            return model.policy.get_distribution(obs_t).distribution.probs.numpy().astype(np.float64)
        q = model.q_net(obs_t).numpy()
    # the epsilon its next actions will use (SB3 updates `exploration_rate` only after a step)
    eps = model.exploration_schedule(model._current_progress_remaining) if exploration is None else exploration
    probs = np.full(q.shape, eps / q.shape[1])
    probs[np.arange(len(q)), q.argmax(1)] += 1.0 - eps
    return probs


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over states of KL(p || q)."""
    return float((p * (np.log(p + 1e-12) - np.log(q + 1e-12))).sum(-1).mean())


def _locked_share(env, probs: np.ndarray, visits: np.ndarray) -> float:
    """Share of the visited state mass where the policy puts > LOCKED_PROB on a wrong token."""
    V = env.vocab_size
    probs = probs.reshape(*visits.shape, V)  # [length, phases, scores, last token, next token]
    tokens = np.arange(V)
    right = np.stack([env.task.expert_next(tokens, np.full(V, ph)) for ph in range(env.phases)])
    locked = (probs.max(-1) > LOCKED_PROB) & (probs.argmax(-1) != right[None, :, None, :])
    return float((visits * locked).sum() / visits.sum())


def _largest_drop(curve: list[float]) -> float:
    """How far the reward ever fell below its best so far (0 for a curve that never goes down)."""
    best, drop = -math.inf, 0.0
    for r in curve:
        best = max(best, r)
        drop = max(drop, best - r)
    return drop


def _checkpoints(env, dqn: bool, every: int):
    """An SB3 callback measuring the policy every `every` env steps on every observation the task
    can produce (SB3 is imported here so that importing this module stays cheap for the app)."""
    from stable_baselines3.common.callbacks import BaseCallback

    grid = env.observation_grid()
    all_obs = grid.reshape(-1, grid.shape[-1])
    uniform = np.full((*grid.shape[:-1], env.vocab_size), 1.0 / env.vocab_size)
    reachable = (env.exact_reward(uniform)[1] > 0).reshape(-1)  # states some sequence can reach

    class Checkpoints(BaseCallback):
        def _on_training_start(self) -> None:
            # the Q-learner starts at epsilon = 1: uniform (PPO's initial policy is near-uniform)
            self.initial = _policy_probs(self.model, dqn, all_obs, 1.0 if dqn else None)
            self.previous = self.initial
            self.steps, self.reward, self.kl, self.update_kl = [], [], [], []
            self.clip_fraction, self.approx_kl = [], []
            self.next_at = 0
            self.measure()

        def measure(self) -> None:
            probs = _policy_probs(self.model, dqn, all_obs)
            reward, visits = env.exact_reward(probs.reshape(*grid.shape[:-1], -1))
            self.steps.append(int(self.num_timesteps))
            self.reward.append(reward)
            self.kl.append(_kl(probs[reachable], self.initial[reachable]))
            self.update_kl.append(_kl(self.previous[reachable], probs[reachable]))
            self.previous, self.visits = probs, visits
            self.next_at += every

        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:
            # a rollout starts right after the last update, so the measured policy is the one trained
            # on every step so far (for PPO and DQN alike)
            if self.num_timesteps >= self.next_at:
                self.measure()
            # PPO's own diagnostics of the update just made (SB3 logs them after its last dump)
            logged = self.model.logger.name_to_value
            for key, out in (("train/clip_fraction", self.clip_fraction), ("train/approx_kl", self.approx_kl)):
                if key in logged:
                    out.append(float(logged[key]))

        def _on_training_end(self) -> None:
            if self.steps[-1] < self.num_timesteps:
                self.measure()

    return Checkpoints()


def _run_one(arm: Arm, cfg: Config, seed: int, learning_rate: float) -> dict:
    """One arm, one learning rate, one seed: train for the budget, measuring as it goes."""
    from .support.token_env import TokenEnv

    t0 = time.perf_counter()
    setup_torch(cfg.threads, seed)
    env = TokenEnv(vocab_size=arm.vocab or cfg.vocab_size, length=cfg.length, reward=cfg.reward, task_seed=cfg.seed)
    model = _make_learner(arm, cfg, seed, learning_rate)
    checkpoints = _checkpoints(env, arm.dqn, every=checkpoint_every(cfg))
    model.learn(budget(cfg), callback=checkpoints)
    final, best = checkpoints.reward[-1], max(checkpoints.reward)
    probs = checkpoints.previous
    locked = _locked_share(env, probs, checkpoints.visits)
    return {
        "steps": checkpoints.steps, "reward": checkpoints.reward, "kl": checkpoints.kl,
        "update_kl": checkpoints.update_kl, "final": final, "best": best, "locked": locked,
        "drop": _largest_drop(checkpoints.reward),
        "entropy": float(-(probs * np.log(probs + 1e-12)).sum(-1).mean()),
        "collapsed": bool(final < cfg.collapse_fraction * best or locked >= cfg.locked_share),
        "clip_fraction": float(np.mean(checkpoints.clip_fraction)) if checkpoints.clip_fraction else None,
        "approx_kl": float(np.mean(checkpoints.approx_kl)) if checkpoints.approx_kl else None,
        "seconds": time.perf_counter() - t0,
    }


def _run_job(job: tuple[str, int, int], cfg: Config) -> dict:
    name, rate_index, k = job
    arm = arm_named(cfg, name)
    return _run_one(arm, cfg, cfg.seed + k, rates(cfg, arm)[rate_index])


def _cost(arm: Arm) -> int:
    """Gradient steps per batch, for running the costliest arms first (DQN: about as many as K = 4)."""
    return 4 if arm.dqn else arm.epochs * (arm.replay + 1)


def _run_all(cfg: Config, p: Progress) -> dict[tuple[str, int, int], dict]:
    """Every (arm, rate, seed) run, in forked processes (the children inherit the imported torch
    and SB3 instead of importing them again); the costliest go first."""
    n_rates = len(cfg.learning_rates)
    jobs = sorted(((a.name, i, k) for a in arms(cfg) for i in range(n_rates) for k in range(cfg.seeds)),
                  key=lambda job: -_cost(arm_named(cfg, job[0])))
    return fork_map(functools.partial(_run_job, cfg=cfg), jobs, lab_workers(),
                    lambda job, done: p(0.05 + 0.95 * done / len(jobs),
                                        f"runs: {done}/{len(jobs)} done ({job[0]}, learning rate "
                                        f"{rates(cfg, arm_named(cfg, job[0]))[job[1]]:g}, seed {job[2] + 1})"))


def _per_seed(runs: list[dict]) -> dict:
    """The per-seed series of one (arm, rate) cell."""
    return {
        "final_reward": rounded([r["final"] for r in runs]),
        "best_reward": rounded([r["best"] for r in runs]),
        "collapsed": [r["collapsed"] for r in runs],
        "locked_share": rounded([r["locked"] for r in runs]),
        "largest_drop": rounded([r["drop"] for r in runs]),
        "final_entropy": rounded([r["entropy"] for r in runs]),
        "final_kl": rounded([r["kl"][-1] for r in runs]),
        # float noise is what the null check compares, so the curves keep full precision
        "reward_curves": [[round(x, 9) for x in r["reward"]] for r in runs],
        "kl_curves": [rounded(r["kl"]) for r in runs],
        "update_kl_curves": [rounded(r["update_kl"]) for r in runs],
        # PPO only: share of samples the clip stopped, and KL(old || new) per update, averaged over updates
        "clip_fraction": [None if r["clip_fraction"] is None else round(r["clip_fraction"], 4) for r in runs],
        "update_approx_kl": [None if r["approx_kl"] is None else round(r["approx_kl"], 4) for r in runs],
        "seconds": [round(r["seconds"], 2) for r in runs],
    }


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: importing Stable-Baselines3")
    setup_torch(cfg.threads, cfg.seed)
    import stable_baselines3  # noqa: F401
    import torch._dynamo  # noqa: F401  (the first optimizer imports it, 1-2 s: once here, not per process)

    n_rates = len(cfg.learning_rates)
    the_arms = arms(cfg)
    p(0.05, f"runs: {len(the_arms) * n_rates * cfg.seeds} runs on {lab_workers()} process(es)")
    runs = _run_all(cfg, p)
    steps = runs[(the_arms[0].name, 0, 0)]["steps"]
    # every run measures at the same steps: same budget, checkpoints on whole batches
    assert all(r["steps"] == steps for r in runs.values()), "checkpoints differ between runs"
    methods: dict[str, dict] = {}
    for arm in the_arms:
        cells = [_per_seed([runs[(arm.name, i, k)] for k in range(cfg.seeds)]) for i in range(n_rates)]
        # every per-seed series becomes [rate][seed]
        data = {key: [cell[key] for cell in cells] for key in PER_SEED}
        data["learning_rates"] = rates(cfg, arm)
        data["mean_final_reward"] = [round(float(np.mean(f)), 4) for f in data["final_reward"]]
        data["std_final_reward"] = [round(float(np.std(f)), 4) for f in data["final_reward"]]
        data["collapses"] = [int(sum(c)) for c in data["collapsed"]]
        data["arm"] = {"role": arm.role, "expect": arm.expect, "clip": arm.clip, "epochs": arm.epochs,
                       "minibatches": arm.minibatches or cfg.minibatches, "replay": arm.replay, "dqn": arm.dqn,
                       "vocab": arm.vocab or cfg.vocab_size}
        methods[arm.name] = data
    result = {
        "lab": NAME, "config": cfg.model_dump(), "methods": methods, "steps": steps,
        "steps_per_run": budget(cfg), "seeds": cfg.seeds, "workers": lab_workers(),
        "max_reward": 1.0, "uniform_reward": round(1.0 / cfg.vocab_size, 4),
    }
    for name in methods:  # derived for display; the checks recompute them from the per-seed series
        methods[name]["works"] = works(result, name)
    result["learn_bar"] = round(learn_bar(result), 4)
    result["summary"] = []
    for m, d in methods.items():
        ok = ", ".join(f"{lr:g}" for lr, w in zip(d["learning_rates"], d["works"]) if w) or "none"
        result["summary"].append(
            f"{m}: works at {sum(d['works'])}/{n_rates} rates ({ok}); collapsed runs per rate "
            f"{'/'.join(map(str, d['collapses']))} of {cfg.seeds}; mean final reward per rate "
            f"{'/'.join(f'{x:.2f}' for x in d['mean_final_reward'])}")
    p(1.0, "done")
    result.update(runtime_s=round(p.elapsed(), 2), timings=p.timings)
    return result


# ---- the checks: registered before the evidence run (docs/lab-evidence.json `design.registered_at`) ----

HALFWAY = 0.5  # `learns`: clip_k1 gets at least halfway from the uniform policy to a perfect one somewhere
NULL_TOLERANCE = 1e-6  # float noise in an expected reward between two runs of the same arithmetic
WIDER_BY = 2  # grid points: clipped reuse must work at this many more rates than unclipped (literature §3.3)


def _bar(result: dict, share: float, name: str | None = None) -> float:
    """`share` of the way from the uniform policy's reward (1/V, V the arm's action space) to 1."""
    vocab = result["methods"][name]["arm"].get("vocab") if name else None
    uniform = 1.0 / vocab if vocab else result["uniform_reward"]
    return uniform + share * (result.get("max_reward", 1.0) - uniform)


def learn_bar(result: dict, name: str | None = None) -> float:
    """The mean final reward an arm must reach at a rate to count as learning there."""
    return _bar(result, result["config"]["learn_share"], name)


def works(result: dict, name: str) -> list[bool]:
    """Per rate: no seed collapsed and the mean final reward reached the arm's learning bar."""
    d, bar = result["methods"][name], learn_bar(result, name)
    return [not any(c) and float(np.mean(f)) >= bar for f, c in zip(d["final_reward"], d["collapsed"])]


def band(result: dict, name: str) -> int:
    """The arm's stable band: how many of the grid's rates it ran at with no seed collapsing."""
    return sum(not any(c) for c in result["methods"][name]["collapsed"])


def _collapses(result: dict, name: str) -> int:
    return sum(sum(c) for c in result["methods"][name]["collapsed"])


def _describe(result: dict, name: str) -> str:
    d = result["methods"][name]
    ok = [f"{lr:g}" for lr, c in zip(d["learning_rates"], d["collapsed"]) if not any(c)]
    runs = sum(len(c) for c in d["collapsed"])
    return (f"{name} stable at {len(ok)} of {len(d['learning_rates'])} rates ({', '.join(ok) or 'none'}), "
            f"{_collapses(result, name)}/{runs} runs collapsed")


def _epochs(result: dict) -> list[int]:
    return sorted(result["config"]["reuse_epochs"])


def _learns(result: dict) -> str | None:
    name = f"clip_k{_epochs(result)[0]}"
    d = result["methods"][name]
    bar = _bar(result, HALFWAY)
    means = [float(np.mean(f)) for f in d["final_reward"]]
    if any(w and m >= bar for w, m in zip(works(result, name), means)):
        return None
    return (f"{name} never got halfway to a perfect policy without a collapse (mean final reward per rate "
            f"{'/'.join(f'{m:.2f}' for m in means)}, halfway is {bar:.2f}, uniform {result['uniform_reward']:.2f})")


def null_gap(result: dict) -> float:
    """The largest difference in expected reward, at any checkpoint, rate and seed, between the
    clipped and the unclipped arm with one gradient step per batch."""
    a, b = result["methods"]["clip_k1_m1"], result["methods"]["noclip_k1_m1"]
    return max(abs(x - y) for ca, cb in zip(a["reward_curves"], b["reward_curves"])
               for sa, sb in zip(ca, cb) for x, y in zip(sa, sb))


def _null_arms_match(result: dict) -> str | None:
    gap = null_gap(result)
    if gap <= NULL_TOLERANCE:
        return None
    return (f"with one gradient step per batch the clipped and unclipped arms differ by up to {gap:.3g} in expected "
            f"reward (float noise is below {NULL_TOLERANCE:g}): something other than the ratio separates them")


def _clip_wider_with_reuse(result: dict) -> str | None:
    k = _epochs(result)[-1]
    mine, theirs = band(result, f"clip_k{k}"), band(result, f"noclip_k{k}")
    if mine >= theirs + WIDER_BY:
        return None
    return (f"at K = {k} epochs the clip widened the stable band by {mine - theirs} rate(s), the claim needs "
            f"{WIDER_BY}: {_describe(result, f'clip_k{k}')}; {_describe(result, f'noclip_k{k}')}")


def _bands(result: dict, prefix: str) -> list[int]:
    return [band(result, f"{prefix}_k{k}") for k in _epochs(result)]


def _unclipped_band_shrinks(result: dict) -> str | None:
    counts = _bands(result, "noclip")
    if all(a >= b for a, b in zip(counts, counts[1:])) and counts[-1] < counts[0]:
        return None
    return (f"the unclipped band at K = {'/'.join(map(str, _epochs(result)))} epochs was "
            f"{'/'.join(map(str, counts))} rates: it does not shrink steadily as reuse grows")


def _clipped_band_holds(result: dict) -> str | None:
    counts = _bands(result, "clip")
    if all(c >= counts[0] for c in counts):
        return None
    return (f"the clipped band at K = {'/'.join(map(str, _epochs(result)))} epochs was "
            f"{'/'.join(map(str, counts))} rates: reuse narrowed it even with the clip")


def _fresh_beats_replay(result: dict) -> str | None:
    replay = next((n for n in result["methods"] if n.startswith("clip_replay")), None)
    if replay is None:
        return "needs the replay arm (replay_batches > 0)"
    fresh = f"clip_k{result['methods'][replay]['arm']['replay'] + 1}"
    if fresh not in result["methods"]:
        return f"needs {fresh}, the fresh-data arm with the same gradient steps per batch (add it to reuse_epochs)"
    rank = {n: (band(result, n), -_collapses(result, n)) for n in (fresh, replay)}
    if rank[fresh] > rank[replay]:
        return None
    how = "tied" if rank[fresh] == rank[replay] else "replay was wider"
    return f"{how}: {_describe(result, fresh)}; {_describe(result, replay)}"


def _works_count(result: dict, name: str) -> int:
    return sum(works(result, name))


def _value_based_ties_small(result: dict) -> str | None:
    if "q_learning" not in result["methods"]:
        return "needs the DQN arm (dqn = true)"
    ppo, dqn = _works_count(result, "clip_k1"), _works_count(result, "q_learning")
    if abs(ppo - dqn) <= 1:
        return None
    return (f"on {result['config']['vocab_size']} tokens clip_k1 works at {ppo} rates and DQN at {dqn}: not a tie "
            f"(within one)")


def _value_based_falls_behind(result: dict) -> str | None:
    sizes = result["config"].get("dqn_vocab_sizes") or []
    if "q_learning" not in result["methods"] or not sizes:
        return "needs the DQN arms (dqn = true, dqn_vocab_sizes)"
    small = _works_count(result, "clip_k1") - _works_count(result, "q_learning")
    v = max(sizes)
    large = _works_count(result, f"clip_k1_v{v}") - _works_count(result, f"q_learning_v{v}")
    if large > small:
        return None
    return (f"PPO's lead over DQN in rates where it works was {small:+d} on {result['config']['vocab_size']} tokens "
            f"and {large:+d} on {v}: it did not grow with the action space")


SUN = "Sun 2023, takeaway 5: stability from (almost) on-policy data and conservative updates"
CHECKS = [
    Check("learns", "Clipped PPO with one epoch learns the task: at some rate of the grid no seed collapses and its "
          "mean final reward is at least halfway from the uniform policy's to a perfect one (the grid is fit for the "
          "task, so the bands below mean something).", SUN,
          "Too few steps, or a grid of rates too small to move the policy, leave it below halfway everywhere; test: "
          "its final rewards replaced by its untrained policy's (each reward curve's first point).", _learns),
    Check("null_arms_match", "Null: with one epoch and one minibatch (one gradient step per batch) the clipped and "
          "unclipped arms give the same reward curves up to float noise, at every rate and seed: the ratio is 1 where "
          "the gradient is taken, so the clip cannot act.",
          "Schulman et al. 2017, Eq. 7 (the clip acts only where the ratio leaves [1-ε, 1+ε]); the TRL docs say the "
          "same of GRPO with num_iterations = 1",
          "An implementation that reuses data, or whose arms differ in anything but the clip, separates them; test: "
          "the unclipped null arm replaced by the unclipped arm with several minibatches.", _null_arms_match),
    Check("clip_wider_with_reuse", f"Effect: at the most reuse (K = 10 epochs of M minibatches) clipped PPO's stable "
          f"band (grid rates where no seed collapsed) is {WIDER_BY} or more rates wider than unclipped PPO's.",
          "Schulman et al. 2017, Table 1: no clipping 10 epochs -0.39, clip 0.2 +0.82; §3.3 of the lab's literature "
          "note for the grid-point margin",
          "If the trust region did not matter under reuse, both arms would work at as many rates; test: the "
          "unclipped arm given the clipped arm's results (a tie).", _clip_wider_with_reuse),
    Check("unclipped_band_shrinks", "Dose: without the clip the stable band shrinks as reuse grows: no wider with "
          "more epochs, and narrower with the most than with one.",
          "Schulman et al. 2017, §2.1: several steps of the unclipped surrogate lead to destructively large updates",
          "If reuse did no harm, the band would stay put; test: every unclipped arm given the one-epoch arm's "
          "results.", _unclipped_band_shrinks),
    Check("clipped_band_holds", "Dose, other half: with the clip, more epochs never narrow the stable band below "
          "the one-epoch band.", "Schulman et al. 2017, §3: the clip makes several epochs of minibatch updates safe",
          "If the clip did not make reuse safe, the clipped band would shrink too; test: the clipped arms given the "
          "unclipped arms' results.", _clipped_band_holds),
    Check("fresh_beats_replay", "On-policy data: clipped PPO that fits each fresh batch K = R + 1 times is more "
          "stable (a wider band, ties broken by fewer collapsed runs) than clipped PPO that fits the fresh batch and "
          "R older batches from older policies once each: the same gradient steps, older data.", SUN,
          "The clip's importance ratio can make old samples harmless (they are mostly clipped), so the two can tie or "
          "replay can win; test: the two arms' results swapped.", _fresh_beats_replay),
    Check("value_based_ties_small", "Null: on the small action space (16 tokens) DQN works (learns without a "
          "collapse) at as many rates as one-epoch clipped PPO, within one.",
          "Issue design of T5 (a tie on a small action space is the expectation); Sun 2023, takeaway 4",
          "A value-based learner that broke down even on 16 tokens would trail; test: DQN's results replaced by its "
          "results with every seed marked collapsed.", _value_based_ties_small),
    Check("value_based_falls_behind", "Effect: PPO's lead over DQN (rates where each works) is larger on 64 tokens "
          "than on 16.",
          "Sun 2023, takeaways 4 and 5: a huge action space makes value-based learning hard, PPO's edge is stability",
          "If the action space did not matter to DQN more than to PPO, the leads would match; test: the 64-token "
          "arms given the 16-token arms' results.", _value_based_falls_behind),
]


def headline(result: dict) -> str:
    ms = result["methods"]
    n = len(ms["clip_k1"]["learning_rates"])
    ks = _epochs(result)
    replay = next((m for m in ms if m.startswith("clip_replay")), None)
    sizes = [v for v in result["config"].get("dqn_vocab_sizes") or [] if f"q_learning_v{v}" in ms]
    dqn = "" if "q_learning" not in ms else (
        f"; rates where PPO/DQN work on {result['config']['vocab_size']} tokens "
        f"{_works_count(result, 'clip_k1')}/{_works_count(result, 'q_learning')}"
        + "".join(f", on {v} {_works_count(result, f'clip_k1_v{v}')}/{_works_count(result, f'q_learning_v{v}')}"
                  for v in sizes))
    return (f"stable rates (of {n}) at K = {'/'.join(map(str, ks))}: clipped "
            f"{'/'.join(map(str, _bands(result, 'clip')))}, unclipped {'/'.join(map(str, _bands(result, 'noclip')))}"
            + (f"; replay {band(result, replay)}" if replay else "") + dqn + f"; null gap {null_gap(result):.1g}")


def design(cfg: Config) -> dict:
    """The registered design at these settings: every arm with its role and expected outcome, and
    the range the lab reaches."""
    return {"arms": [{"name": a.name, "role": a.role, "expect": a.expect} for a in arms(cfg)],
            "max_reuse_epochs": max(cfg.reuse_epochs)}
