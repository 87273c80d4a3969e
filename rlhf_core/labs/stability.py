"""T5 lab `stability`: PPO's edge is stability, from near-on-policy data and conservative updates.

Paper claim (Sun 2023, takeaway 5): RLHF uses PPO not because policy gradients are the only way to
optimise a reward, but because PPO's clipped surrogate keeps each update close to the policy that
collected the data. Learning from near-on-policy samples with small, trust-region-like steps makes
it *stable*. Dropping the clip (large steps), reusing each batch for many epochs (stale, off-policy
data) or switching to off-policy value-based learning (Q-learning from a replay buffer) make runs
less predictable.

Stability is not a property of one learning rate: any learner is stable with tiny steps and any
learner breaks with huge ones. The claim, stated so that it can fail, is about the *range* of
learning rates a learner tolerates: clipped near-on-policy PPO should learn without collapsing over
a wider range of learning rates than the other three. So every learner is run over a grid of
learning rates, several seeds each, and the grid is chosen by one rule for all of them.

Task: the shared token automaton (`token_task.TokenTask`) as a Gymnasium environment
(`token_env.TokenEnv`): write `length` tokens after a home start token; the reward is given once, at
the end of the sequence: the fraction of tokens that followed the hidden rule (a sequence-level
score, as from a reward model). The trap is off: this lab is about optimisation, not distribution
shift (that is T2's lab), and with the trap off the right token depends only on the last one, so a
perfect policy exists for every learner. The observation is a sufficient statistic of the prefix
(see token_env), so value functions, PPO's and DQN's alike, see a Markov state as an LLM's do.

Learners, all from Stable-Baselines3, with the same env-step budget and networks:

- `ppo_clipped`: PPO with clip range 0.2 and one update epoch. Each batch of sequences is split into
  several minibatches: with a single minibatch the one gradient step is taken at ratio 1, where the
  clip is inert; with several, later minibatches see a moved policy and the clip stops samples whose
  ratio already left [1-eps, 1+eps];
- `ppo_unclipped`: the same PPO with the clip range at 1e6 (no trust region);
- `ppo_stale`: clipped PPO that reuses every batch for `stale_epochs` epochs (4, TRL's default
  `num_ppo_epochs`; up to 8 in the settings), so later epochs fit data from an increasingly older
  policy;
- `q_learning`: DQN (off-policy, value-based) with its usual machinery: a replay buffer replayed
  `dqn_replay_ratio` times per transition (4, minibatch 64), epsilon-greedy exploration decaying
  1 -> 0.05 over the first 30% of the budget, and a target network copied every 512 env steps.

The learning-rate grid (the rule): each learner sweeps the same multiples of its own default
learning rate. The three PPO learners are one algorithm and share `learning_rates` (Adam; the
default 0.002, 0.005, 0.01, 0.02 spans a decade); DQN's rates are those divided by
`dqn_rate_divisor` (3: Stable-Baselines3's default rates are 3e-4 for PPO and 1e-4 for DQN, so DQN
sweeps the same multiples of its own default). `dqn_rate_divisor=1` puts every learner on the same
absolute grid instead. Within one replicate every learner and rate uses the same seeds.

Measured per run (one learner, one rate, one seed):
- reward: the policy's exact expected reward (the state distribution is propagated through the
  episode, no sampling noise) every `steps / eval_points` env steps;
- KL: mean over every reachable observation of KL(current || initial policy), and the KL between
  consecutive checkpoints (the size of the updates);
- the largest drop of the reward below its best-so-far (in-run instability);
- collapse, below.
For the Q-learner the "policy" is its behaviour policy, epsilon-greedy over Q at the current
exploration rate (uniform at the start, like the near-uniform initial PPO policies): its reward is
that of the samples it draws, as for PPO, and its KL counts argmax flips (about 5 nats each).

Collapse (a run that ends where it does not recover from): its final reward is below
`collapse_fraction` of the best it reached during training (it learnt, then lost it), or it ended
*locked* onto wrong tokens: on at least `locked_share` of the states it visits it puts more than 0.99
on a wrong token, where an on-policy learner no longer samples the right one and cannot learn it
(entropy collapse, the failure of RLHF runs whose policy degenerates). Epsilon-greedy never puts
more than 0.95 on a token, so the Q-learner can only collapse by losing its reward.

A learner *works* at a rate when none of its seeds collapsed there and its mean final reward is
clearly above the uniform policy's: it closed at least `learn_share` (a tenth) of the gap from the
uniform policy's reward (1/V) to a perfect one (1). A learner that never moves cannot collapse, so
"stable" alone would reward doing nothing; the bar is low on purpose, so that a learner that is
merely slow at small rates still counts (the claim is about stability, not speed).
The checks (`CHECKS`, recomputed from the per-seed final rewards and collapse flags):
- `learns`: at some rate ppo_clipped works and gets at least halfway from uniform to perfect;
- `wider_than_unclipped`, `wider_than_stale`, `wider_than_q_learning`: ppo_clipped works at more
  rates of the grid than that learner. A tie in the number of rates is broken by the number of
  collapsed runs over the whole grid (fewer is more stable); a tie in both is a failure (the grid
  does not separate them).

Measured, every figure from `python scripts/stability_sweep.py` (which runs `python -m rlhf_core lab
stability --seeds 5 --json` and records the commit and the machine): at the defaults the shape is
NOT reproduced, 0 of 5 replicates (10 runs per learner and rate). Collapsed runs at PPO rates
0.002/0.005/0.01/0.02: clipped 0/0/0/0, unclipped 0/2/3/10, stale (4 epochs) 0/0/0/0, DQN (at a
third of those rates) 0/1/0/1; mean final reward clipped 0.25/0.66/0.85/0.86, unclipped
0.30/0.64/0.69/0.49, stale 0.86/0.96/0.92/0.81, DQN 0.34/0.43/0.43/0.36. Clipped one-epoch PPO never
collapsed and worked at every rate, and `learns` and `wider_than_unclipped` held in 5 of 5; but PPO
with 4 epochs per batch never collapsed either and learnt faster (`wider_than_stale`: tied in 5 of
5), and DQN at its own scaled rates mostly did not collapse (`wider_than_q_learning` failed in 3 of
5, tied). A wider grid (`--set 'learning_rates=[0.001,0.002,0.005,0.01,0.02,0.05]'`) brackets
one-epoch PPO: below the learning bar at 0.001 (mean 0.10), every PPO run collapsed at 0.05; the
4-epoch learner learnt at 0.001 too (0.62), so it worked at 5 of 6 rates against 4: 0 of 5. With DQN
on the same absolute grid as PPO (`--set dqn_rate_divisor=1`) DQN collapsed more (9 of 40 runs, 5 of
10 at 0.02) and clipped PPO was wider than it in 4 of 5 replicates; the 4-epoch learner still tied:
0 of 5. With 8 epochs per batch (`--set stale_epochs=8`) the stale learner collapsed in 2 of 10 runs
at 0.02 and still tied in 3 of 5 replicates: 1 of 5.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from ..config import ConfigError
from .support.common import LabConfig, Progress, fork_map, knob, lab_workers, rounded, setup_torch
from .support.verdict import Check

NAME = "stability"
METHODS = ("ppo_clipped", "ppo_unclipped", "ppo_stale", "q_learning")
NO_CLIP = 1e6  # a clip range no probability ratio reaches: PPO without its trust region
LOCKED_PROB = 0.99  # a state whose policy puts more than this on one wrong token is "locked"
MAX_RUNS_PER_METHOD = 12  # rates x seeds: the budget (LARGEST sits at it)
PER_SEED = ("final_reward", "best_reward", "collapsed", "locked_share", "largest_drop", "final_entropy",
            "final_kl", "reward_curves", "kl_curves", "update_kl_curves", "clip_fraction", "update_approx_kl",
            "seconds")


class Config(LabConfig):
    seeds: int = knob(2, "Seeds per learner and learning rate (each seed: its own network init and sampling; "
                      "the same seeds for every learner and rate).", lo=2, hi=3)
    steps: int = knob(6144, "Env steps (tokens written) per run; every learner gets the same budget.",
                      lo=2048, hi=7168)
    learning_rates: list[float] = knob([0.002, 0.005, 0.01, 0.02], "Adam learning rates swept by the three PPO "
                                       "learners (Q-learning sweeps the same multiples of its own default rate, "
                                       "see dqn_rate_divisor). 2 to 6 rates.", lo=1e-5, hi=0.1)
    dqn_rate_divisor: float = knob(3.0, "Q-learning's rates are the PPO rates divided by this: 3 is the ratio of "
                                   "Stable-Baselines3's default rates (PPO 3e-4, DQN 1e-4); 1 puts every learner on "
                                   "the same absolute grid.", lo=0.1, hi=30.0, advanced=True)
    clip_range: float = knob(0.2, "PPO clip epsilon for ppo_clipped and ppo_stale.", lo=0.05, hi=0.5)
    stale_epochs: int = knob(4, "Update epochs per batch for ppo_stale, 4 as in TRL's PPO (ppo_clipped and "
                             "ppo_unclipped use 1).",
                             lo=2, hi=8)
    vocab_size: int = knob(16, "Task tokens V (the action space); half are home tokens.", lo=4, hi=32)
    length: int = knob(8, "Tokens per sequence (episode length).", lo=4, hi=12)
    reward: str = knob("sequence", "'sequence': the fraction of right tokens, given once at the end (RLHF-like); "
                       "'token': 1/length per right token as it is written.", choices=["sequence", "token"])
    sequences_per_batch: int = knob(64, "Sequences (parallel environments) per PPO batch.", choices=[32, 64],
                                    advanced=True)
    minibatch_tokens: int = knob(64, "Tokens per gradient step (PPO minibatch); 64 sequences of 8 tokens make 8 "
                                 "minibatches per epoch, so the clip can act within one epoch.",
                                 choices=[64, 128], advanced=True)
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
    learn_share: float = knob(0.1, "A learner works at a rate when no seed collapsed and its mean final reward "
                              "closed at least this share of the gap from the uniform policy to a perfect one.",
                              lo=0.05, hi=0.9, advanced=True)
    seed: int = knob(0, "First seed; seed k of every learner and rate is seed + k (seed also picks the automaton).",
                     lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads per run.", lo=0, hi=64, advanced=True)

    def check(self) -> None:
        if self.sequences_per_batch * self.length < 2 * self.minibatch_tokens:
            raise ConfigError(f"minibatch_tokens: a PPO batch ({self.sequences_per_batch} sequences x {self.length} "
                              f"tokens) must hold at least 2 minibatches of {self.minibatch_tokens} tokens, or "
                              f"the clip never acts in one epoch")
        rates = sorted(set(self.learning_rates))
        if not 2 <= len(rates) <= 6:
            raise ConfigError(f"learning_rates: 2 to 6 distinct rates (a range needs at least two), got {rates}")
        if len(rates) * self.seeds > MAX_RUNS_PER_METHOD:
            raise ConfigError(f"learning_rates: {len(rates)} rates x {self.seeds} seeds = {len(rates) * self.seeds} "
                              f"runs per learner, at most {MAX_RUNS_PER_METHOD} (about a minute); use fewer rates "
                              f"or seeds")
        self.learning_rates = rates


QUICK = {"steps": 4096, "eval_points": 8}
LARGEST = {"seeds": 3, "learning_rates": [0.001, 0.002, 0.005, 0.02], "steps": 7168, "stale_epochs": 8,
           "vocab_size": 32, "length": 12, "hidden": 128, "sequences_per_batch": 32, "minibatch_tokens": 64,
           "dqn_replay_ratio": 8, "eval_points": 32}


def rates(cfg: Config, method: str) -> list[float]:
    """The learning rates a learner sweeps: the PPO grid, or for DQN the same grid / dqn_rate_divisor."""
    if method == "q_learning":
        return [float(f"{lr / cfg.dqn_rate_divisor:.6g}") for lr in cfg.learning_rates]
    return list(cfg.learning_rates)


def budget(cfg: Config) -> int:
    """Env steps per run: `steps` rounded up to whole PPO batches, so every method stops at the same step."""
    batch = cfg.sequences_per_batch * cfg.length
    return math.ceil(cfg.steps / batch) * batch


def checkpoint_every(cfg: Config) -> int:
    """Env steps between measurements: whole PPO batches (PPO's policy only changes between batches),
    so every method is measured at the same steps; about `eval_points` of them."""
    batch = cfg.sequences_per_batch * cfg.length
    return max(1, round(budget(cfg) / cfg.eval_points / batch)) * batch


# ---- the learners -------------------------------------------------------------------------------

def _make_learner(method: str, cfg: Config, seed: int, learning_rate: float):
    from stable_baselines3 import DQN, PPO

    from .support.token_env import TokenVecEnv

    venv = TokenVecEnv(cfg.sequences_per_batch, vocab_size=cfg.vocab_size, length=cfg.length, reward=cfg.reward,
                       task_seed=cfg.seed)
    # Adam's multi-tensor ("foreach") update: the same numbers, about a tenth less time for these tiny
    # networks; eps is SB3's own default for each (1e-5 for PPO's policy, torch's 1e-8 for DQN's)
    net = dict(net_arch=[cfg.hidden, cfg.hidden],
               optimizer_kwargs=dict(foreach=True) if method == "q_learning" else dict(eps=1e-5, foreach=True))
    # gamma 1: an episode is one finite sequence and only its total score matters, as in RLHF
    common = dict(learning_rate=learning_rate, gamma=1.0, seed=seed, device="cpu", policy_kwargs=net, verbose=0)
    if method == "q_learning":
        # one step of the vector env stores `sequences_per_batch` transitions; replay each `ratio` times
        gradient_steps = max(1, round(cfg.dqn_replay_ratio * cfg.sequences_per_batch / 64))
        return DQN("MlpPolicy", venv, batch_size=64, buffer_size=budget(cfg), learning_starts=budget(cfg) // 16,
                   train_freq=1, gradient_steps=gradient_steps, target_update_interval=cfg.dqn_target_update,
                   exploration_fraction=cfg.dqn_exploration, exploration_initial_eps=1.0,
                   exploration_final_eps=0.05, **common)
    # n_steps = length: a batch is one whole sequence per environment, like an RLHF batch of completions
    return PPO("MlpPolicy", venv, n_steps=cfg.length, batch_size=cfg.minibatch_tokens,
               n_epochs=cfg.stale_epochs if method == "ppo_stale" else 1,
               clip_range=NO_CLIP if method == "ppo_unclipped" else cfg.clip_range,
               gae_lambda=0.95, ent_coef=0.0, **common)


def _policy_probs(model, method: str, obs, exploration: float | None = None) -> np.ndarray:
    """Action probabilities of the learner's sampling policy on a batch of observations."""
    import torch

    with torch.no_grad():
        obs_t = torch.as_tensor(obs)
        if method != "q_learning":
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


def _checkpoints(env, method: str, every: int):
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
            self.initial = _policy_probs(self.model, method, all_obs, 1.0 if method == "q_learning" else None)
            self.previous = self.initial
            self.steps, self.reward, self.kl, self.update_kl = [], [], [], []
            self.clip_fraction, self.approx_kl = [], []
            self.next_at = 0
            self.measure()

        def measure(self) -> None:
            probs = _policy_probs(self.model, method, all_obs)
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


def _run_one(method: str, cfg: Config, seed: int, learning_rate: float) -> dict:
    """One learner, one learning rate, one seed: train for the budget, measuring as it goes."""
    from .support.token_env import TokenEnv

    t0 = time.perf_counter()
    setup_torch(cfg.threads, seed)
    env = TokenEnv(vocab_size=cfg.vocab_size, length=cfg.length, reward=cfg.reward, task_seed=cfg.seed)
    model = _make_learner(method, cfg, seed, learning_rate)
    checkpoints = _checkpoints(env, method, every=checkpoint_every(cfg))
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
    method, rate_index, k = job
    return _run_one(method, cfg, cfg.seed + k, rates(cfg, method)[rate_index])


COST_ORDER = {"ppo_stale": 0, "q_learning": 1, "ppo_clipped": 2, "ppo_unclipped": 2}


def _run_all(cfg: Config, p: Progress) -> dict[tuple[str, int, int], dict]:
    """Every (method, rate, seed) run, in forked processes (the children inherit the imported torch
    and SB3 instead of importing them again); the costliest (ppo_stale) go first."""
    n_rates = len(cfg.learning_rates)
    jobs = sorted(((m, i, k) for m in METHODS for i in range(n_rates) for k in range(cfg.seeds)),
                  key=lambda job: COST_ORDER[job[0]])
    return fork_map(functools.partial(_run_job, cfg=cfg), jobs, lab_workers(),
                    lambda job, done: p(0.05 + 0.95 * done / len(jobs),
                                        f"runs: {done}/{len(jobs)} done ({job[0]}, learning rate "
                                        f"{rates(cfg, job[0])[job[1]]:g}, seed {job[2] + 1})"))


def _per_seed(runs: list[dict]) -> dict:
    """The per-seed series of one (method, rate) cell."""
    return {
        "final_reward": rounded([r["final"] for r in runs]),
        "best_reward": rounded([r["best"] for r in runs]),
        "collapsed": [r["collapsed"] for r in runs],
        "locked_share": rounded([r["locked"] for r in runs]),
        "largest_drop": rounded([r["drop"] for r in runs]),
        "final_entropy": rounded([r["entropy"] for r in runs]),
        "final_kl": rounded([r["kl"][-1] for r in runs]),
        "reward_curves": [rounded(r["reward"]) for r in runs],
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
    p(0.05, f"runs: {len(METHODS) * n_rates * cfg.seeds} runs on {lab_workers()} process(es)")
    runs = _run_all(cfg, p)
    steps = runs[(METHODS[0], 0, 0)]["steps"]
    # every run measures at the same steps: same budget, checkpoints on whole batches
    assert all(r["steps"] == steps for r in runs.values()), "checkpoints differ between runs"
    methods: dict[str, dict] = {}
    for method in METHODS:
        cells = [_per_seed([runs[(method, i, k)] for k in range(cfg.seeds)]) for i in range(n_rates)]
        # every per-seed series becomes [rate][seed]
        data = {key: [cell[key] for cell in cells] for key in PER_SEED}
        data["learning_rates"] = rates(cfg, method)
        data["mean_final_reward"] = [round(float(np.mean(f)), 4) for f in data["final_reward"]]
        data["std_final_reward"] = [round(float(np.std(f)), 4) for f in data["final_reward"]]
        data["collapses"] = [int(sum(c)) for c in data["collapsed"]]
        methods[method] = data
    result = {
        "lab": NAME, "config": cfg.model_dump(), "methods": methods, "steps": steps,
        "steps_per_run": budget(cfg), "seeds": cfg.seeds, "workers": lab_workers(),
        "max_reward": 1.0, "uniform_reward": round(1.0 / cfg.vocab_size, 4),
    }
    for method in METHODS:  # derived for display; the checks recompute them from the per-seed series
        methods[method]["works"] = works(result, method)
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


# ---- the checks: the claim over the learning-rate grid -------------------------------------------

HALFWAY = 0.5  # `learns`: ppo_clipped gets at least halfway from the uniform policy to a perfect one somewhere


def _bar(result: dict, share: float) -> float:
    uniform, best = result["uniform_reward"], result.get("max_reward", 1.0)
    return uniform + share * (best - uniform)


def learn_bar(result: dict) -> float:
    """The mean final reward a learner must reach at a rate to count as learning there."""
    return _bar(result, result["config"]["learn_share"])


def works(result: dict, method: str) -> list[bool]:
    """Per rate: no seed collapsed and the mean final reward reached the learning bar."""
    d, bar = result["methods"][method], learn_bar(result)
    return [not any(c) and float(np.mean(f)) >= bar for f, c in zip(d["final_reward"], d["collapsed"])]


def _rank(result: dict, method: str) -> tuple[int, int]:
    """(rates where it works, minus its collapsed runs over the grid): larger is more stable."""
    return sum(works(result, method)), -sum(sum(c) for c in result["methods"][method]["collapsed"])


def _describe(result: dict, method: str) -> str:
    d = result["methods"][method]
    ok = [f"{lr:g}" for lr, w in zip(d["learning_rates"], works(result, method)) if w]
    runs = sum(len(c) for c in d["collapsed"])
    return (f"{method} works at {len(ok)} of {len(d['learning_rates'])} rates ({', '.join(ok) or 'none'}), "
            f"{-_rank(result, method)[1]}/{runs} runs collapsed")


def _wider_than(other: str):
    def test(result: dict) -> str | None:
        mine, theirs = _rank(result, "ppo_clipped"), _rank(result, other)
        if mine > theirs:
            return None
        how = "tied" if mine == theirs else "narrower"
        return f"{how}: {_describe(result, 'ppo_clipped')}; {_describe(result, other)}"
    test.__name__ = f"_wider_than_{other}"
    return test


def _learns(result: dict) -> str | None:
    d = result["methods"]["ppo_clipped"]
    bar = _bar(result, HALFWAY)
    means = [float(np.mean(f)) for f in d["final_reward"]]
    if any(w and m >= bar for w, m in zip(works(result, "ppo_clipped"), means)):
        return None
    return (f"ppo_clipped never got halfway to a perfect policy without a collapse (mean final reward per rate "
            f"{'/'.join(f'{m:.2f}' for m in means)}, halfway is {bar:.2f}, uniform {result['uniform_reward']:.2f})")


SOURCE = "Sun 2023, takeaway 5: PPO's edge over off-policy and value-based RL is stability"
CHECKS = [
    Check("learns", "Clipped one-epoch PPO learns the task: at some rate of the grid no seed collapses and its mean "
          "final reward is at least halfway from the uniform policy's to a perfect one.", SOURCE,
          "Too few steps, or a grid of rates too small to move the policy (or too large to keep it), leave it below "
          "halfway everywhere; test: its final rewards replaced by its own untrained policy's (the first point of "
          "each reward curve).", _learns),
    Check("wider_than_unclipped", "Clipped PPO works (no seed collapses, it learns) at more of the grid's learning "
          "rates than the same PPO without the clip; ties in that count are broken by fewer collapsed runs.", SOURCE,
          "If the trust region did not matter, the unclipped learner would work at as many rates; at small rates "
          "the two are the same algorithm. Test: ppo_clipped's results swapped with ppo_unclipped's.",
          _wider_than("ppo_unclipped")),
    Check("wider_than_stale", "Clipped one-epoch PPO works at more of the grid's rates than clipped PPO reusing "
          "every batch for several epochs (stale_epochs; stale, off-policy data); ties broken by fewer collapsed "
          "runs.", SOURCE,
          "Reusing each batch learns faster at small rates, so the stale learner can work at as many rates or more; "
          "test: ppo_clipped's results swapped with ppo_stale's.", _wider_than("ppo_stale")),
    Check("wider_than_q_learning", "Clipped PPO works at more rates of its grid than DQN (off-policy, value-based, "
          "with replay, a target network and epsilon-greedy exploration) at the same multiples of its own default "
          "rate; ties broken by fewer collapsed runs.", SOURCE,
          "A value-based learner that neither collapses nor stalls over its grid would tie or win; test: "
          "ppo_clipped's results swapped with q_learning's.", _wider_than("q_learning")),
]


def headline(result: dict) -> str:
    ms = result["methods"]
    n = len(ms["ppo_clipped"]["learning_rates"])
    return ("rates (of " + str(n) + ") where each learner works, clipped/unclipped/stale/DQN: "
            + "/".join(str(sum(works(result, m))) for m in METHODS)
            + "; collapsed runs: " + "/".join(str(sum(sum(c) for c in ms[m]["collapsed"])) for m in METHODS)
            + f" of {n * result['seeds']}")
