"""A Gymnasium environment over the shared token task (`token_task.TokenTask`): an agent writes a
sequence one token at a time, like a language model, and is scored on how many tokens follow the
hidden rule.

- observation: one-hot of the last token (V values), one-hot of the position (L values), one-hot of
  how many tokens so far followed the rule (L+1 values; `show_score=False` drops it) and, with
  `trap=True`, the automaton's phase bit. This is a sufficient statistic of the prefix: a language
  model reads the whole prefix, so its value of a state is a function of that state. Without the
  running score the sequence-level reward would not be a function of the observation, which breaks
  value learning (measured: DQN did not learn at all) while a policy never needs it (the right next
  token depends on the last token and the phase only).
- action: Discrete(V), the next token.
- episode: `length` tokens after a random home start token.
- reward: `"sequence"` (RLHF-like): 0 on every step and the fraction of right tokens on the last one;
  `"token"`: 1/length for every right token as it is written (the same return, spread out densely).

`TokenVecEnv` steps many episodes at once for Stable-Baselines3 (same dynamics, batched numpy).
`exact_reward` and `observation_grid` let a lab evaluate a policy without sampling noise: the
distribution over (phase, score so far, last token) is propagated through the episode exactly.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from .token_task import TokenTask

REWARD_KINDS = ("sequence", "token")


class TokenEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, vocab_size: int = 16, home_size: int | None = None, length: int = 8, trap: bool = False,
                 reward: str = "sequence", show_score: bool = True, task_seed: int = 0):
        if reward not in REWARD_KINDS:
            raise ValueError(f"reward must be one of {REWARD_KINDS}, got {reward!r}")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.task = TokenTask(vocab_size=vocab_size, home_size=home_size or max(2, vocab_size // 2), trap=trap,
                              seed=task_seed)
        self.vocab_size, self.length, self.trap, self.reward_kind = vocab_size, length, trap, reward
        self.show_score = show_score
        self.phases = 2 if trap else 1
        self.scores = length + 1 if show_score else 1  # distinct values of the score part of the observation
        self.obs_size = vocab_size + length + (length + 1 if show_score else 0) + (1 if trap else 0)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.obs_size,), dtype=np.float32)
        self.action_space = spaces.Discrete(vocab_size)
        self._last = self._phase = self._t = self._right = 0

    # ---- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._last = int(self.task.starts(1, self.np_random)[0])
        self._phase, self._t, self._right = 0, 0, 0
        return self.encode(self._last, 0, 0, 0), {}

    def step(self, action):
        token = int(action)
        right = token == int(self.task.expert_next(np.array([self._last]), np.array([self._phase]))[0])
        self._right += right
        self._phase = int(self.task.next_phase(np.array([self._phase]), np.array([token]))[0])
        self._last, self._t = token, self._t + 1
        done = self._t >= self.length
        if self.reward_kind == "token":
            reward = right / self.length
        else:  # the whole sequence is judged once, at the end, as a reward model would
            reward = self._right / self.length if done else 0.0
        info = {"right": right}
        if done:
            info["fraction_right"] = self._right / self.length
        # the last observation of an episode is never acted on; keep it in range for the networks
        obs = self.encode(self._last, min(self._t, self.length - 1), self._phase, self._right)
        return obs, float(reward), done, False, info

    # ---- helpers ---------------------------------------------------------------------------------
    def encode(self, last: int, position: int, phase: int = 0, right_so_far: int = 0) -> np.ndarray:
        obs = np.zeros(self.obs_size, dtype=np.float32)
        obs[last] = 1.0
        obs[self.vocab_size + position] = 1.0
        if self.show_score:
            obs[self.vocab_size + self.length + right_so_far] = 1.0
        if self.trap:
            obs[-1] = float(phase)
        return obs

    def observation_grid(self) -> np.ndarray:
        """Every observation the episode can produce, [length, phases, scores, V, obs_size] (phases = 2
        with the trap, else 1; scores = length + 1 with show_score, else 1), to evaluate a policy on
        all states at once. Unreachable ones (a score above the position) are included; harmless."""
        grid = np.zeros((self.length, self.phases, self.scores, self.vocab_size, self.obs_size), dtype=np.float32)
        for t in range(self.length):
            for ph in range(self.phases):
                for sc in range(self.scores):
                    for tok in range(self.vocab_size):
                        grid[t, ph, sc, tok] = self.encode(tok, t, ph, sc)
        return grid

    def exact_reward(self, probs: np.ndarray) -> tuple[float, np.ndarray]:
        """Expected fraction of right tokens of a stochastic policy, with no sampling.

        probs: [length, phases, scores, V, V] action probabilities on `observation_grid()`. Returns
        the expected reward and the state distribution [length, phases, scores, V] the policy visits."""
        V, K = self.vocab_size, self.task.home_size
        dist = np.zeros((self.phases, self.scores, V))
        dist[0, 0, :K] = 1.0 / K  # starts: a uniform home token (TokenTask.starts)
        tokens = np.arange(V)
        visits, expected_right = [], 0.0
        for t in range(self.length):
            visits.append(dist)
            new = np.zeros_like(dist)
            for ph in range(self.phases):
                right = self.task.expert_next(tokens, np.full(V, ph))
                is_right = tokens[None, :] == right[:, None]  # [last, next]
                to_phase = self.task.next_phase(np.full(V, ph), tokens)  # phase after writing `next`
                flow = dist[ph][:, :, None] * probs[t, ph]  # [score, last, next]: mass moving last -> next
                right_mass = (flow * is_right).sum(1)  # [score, next]
                wrong_mass = flow.sum(1) - right_mass
                expected_right += float(right_mass.sum())
                # a right token moves the score up one slot (when the score is shown at all)
                moved = np.zeros_like(right_mass)
                if self.show_score:
                    moved[1:] = right_mass[:-1]
                    moved[-1] += right_mass[-1]
                else:
                    moved = right_mass
                for nph in range(self.phases):
                    into = to_phase == nph
                    new[nph][:, into] += (wrong_mass + moved)[:, into]
            dist = new
        return expected_right / self.length, np.stack(visits)


class TokenVecEnv(VecEnv):
    """`n` TokenEnv episodes stepped together with numpy, for Stable-Baselines3.

    Same dynamics, observations and rewards as `TokenEnv` (tests/labs/test_stability.py checks it),
    without DummyVecEnv's per-environment Python loop and copies: a quarter of a short PPO run's
    time went there. All episodes have the same length, so they start and end together."""

    def __init__(self, n: int, **env_kwargs):
        self.env = TokenEnv(**env_kwargs)  # the rules, spaces and encoding
        super().__init__(n, self.env.observation_space, self.env.action_space)
        self.rng = np.random.default_rng()
        self._actions = np.zeros(n, dtype=np.int64)
        self._start_all()

    def _start_all(self) -> None:
        n = self.num_envs
        self._last = self.env.task.starts(n, self.rng)
        self._phase = np.zeros(n, dtype=np.int64)
        self._right = np.zeros(n, dtype=np.int64)
        self._t = 0

    def _observe(self, position: int) -> np.ndarray:
        e, n = self.env, self.num_envs
        obs = np.zeros((n, e.obs_size), dtype=np.float32)
        rows = np.arange(n)
        obs[rows, self._last] = 1.0
        obs[:, e.vocab_size + position] = 1.0
        if e.show_score:
            obs[rows, e.vocab_size + e.length + self._right] = 1.0
        if e.trap:
            obs[:, -1] = self._phase
        return obs

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:  # set by SB3's set_random_seed(seed) before learning
            self.rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._start_all()
        return self._observe(0)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self):
        e, n = self.env, self.num_envs
        right = self._actions == e.task.expert_next(self._last, self._phase)
        self._right += right
        self._phase = e.task.next_phase(self._phase, self._actions)
        self._last = self._actions
        self._t += 1
        done = self._t >= e.length
        if e.reward_kind == "token":
            rewards = right / e.length
        else:
            rewards = self._right / e.length if done else np.zeros(n)
        obs = self._observe(min(self._t, e.length - 1))
        dones = np.full(n, done)
        if not done:
            return obs, rewards.astype(np.float32), dones, [{} for _ in range(n)]
        infos = [{"terminal_observation": obs[i], "TimeLimit.truncated": False,
                  "fraction_right": float(self._right[i] / e.length)} for i in range(n)]
        self._start_all()
        return self._observe(0), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list:
        return [getattr(self.env, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
