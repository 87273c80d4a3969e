"""T5: clipped on-policy PPO is the stable learner (fewest collapses, least spread, no falls)."""

import numpy as np
import pytest

from rlhf_core import labs
from rlhf_core.labs.stability import METHODS, shape_problems
from rlhf_core.labs.token_env import TokenEnv, TokenVecEnv


def _expert_probs(env: TokenEnv) -> np.ndarray:
    grid = env.observation_grid()
    probs = np.zeros((*grid.shape[:-1], env.vocab_size))
    tokens = np.arange(env.vocab_size)
    for ph in range(env.phases):
        probs[:, ph, :, tokens, env.task.expert_next(tokens, np.full(env.vocab_size, ph))] = 1.0
    return probs


@pytest.mark.parametrize("trap", [False, True])
def test_exact_reward_matches_sampled_episodes(trap):
    env = TokenEnv(vocab_size=8, length=5, trap=trap)
    assert env.exact_reward(_expert_probs(env))[0] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(8, 0.3), size=_expert_probs(env).shape[:-1])
    total, n = 0.0, 3000
    for i in range(n):
        obs, _ = env.reset(seed=i)
        done, t = False, 0
        while not done:
            last, score = int(obs[:8].argmax()), int(obs[8 + 5:8 + 5 + 6].argmax())
            phase = int(obs[-1]) if trap else 0
            obs, reward, done, _, _ = env.step(rng.choice(8, p=probs[t, phase, score, last]))
            t += 1
        total += reward
    assert total / n == pytest.approx(env.exact_reward(probs)[0], abs=0.01)


def test_vector_env_steps_like_the_gymnasium_env():
    venv = TokenVecEnv(4, vocab_size=8, length=5, trap=True)
    venv.seed(3)
    obs = venv.reset()
    envs = [TokenEnv(vocab_size=8, length=5, trap=True) for _ in range(4)]
    for i, env in enumerate(envs):  # the same start tokens
        env.reset()
        env._last = int(venv._last[i])
        assert np.array_equal(env.encode(env._last, 0), obs[i])
    rng = np.random.default_rng(0)
    for t in range(5):
        actions = rng.integers(0, 8, size=4)
        actions[:2] = venv.env.task.expert_next(venv._last, venv._phase)[:2]  # two sequences stay right
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, d, _, _ = env.step(actions[i])
            assert r == pytest.approx(rewards[i]) and d == dones[i]
            assert np.array_equal(o, infos[i]["terminal_observation"] if d else obs[i])
    assert rewards[:2].tolist() == [1.0, 1.0] and dones.all()


def test_quick_run_reproduces_the_published_shape(quick_result):
    r = quick_result("stability")
    seeds, steps = r["seeds"], r["steps"]
    assert steps[0] == 0 and steps[-1] == r["steps_per_run"] and steps == sorted(steps)
    for name in METHODS:
        m = r["methods"][name]
        assert len(m["final_reward"]) == len(m["collapsed"]) == seeds >= 3
        assert all(isinstance(c, bool) for c in m["collapsed"])
        for key in ("reward_curves", "kl_curves", "update_kl_curves"):
            assert len(m[key]) == seeds and all(len(c) == len(steps) for c in m[key])
        assert all(curve[-1] == final for curve, final in zip(m["reward_curves"], m["final_reward"]))
    assert shape_problems(r) == []
    ms = r["methods"]
    assert min(ms["ppo_clipped"]["clip_fraction"]) > 0  # the clip did act within one epoch
    assert ms["ppo_unclipped"]["clip_fraction"] == [0.0] * seeds
    assert sum(ms["ppo_unclipped"]["collapsed"]) > sum(ms["ppo_clipped"]["collapsed"])
    assert r["runtime_s"] and "runs" in r["timings"]


def test_shape_check_can_fail(quick_result):
    """Clipped PPO given the unclipped run's numbers (collapses, spread, falls) must be flagged."""
    r = quick_result("stability")
    swapped = dict(r, methods=dict(r["methods"], ppo_clipped=r["methods"]["ppo_unclipped"],
                                   ppo_unclipped=r["methods"]["ppo_clipped"]))
    problems = shape_problems(swapped)
    assert problems and any("collapse" in p for p in problems)
    idle = dict(r, methods=dict(r["methods"], ppo_clipped=dict(r["methods"]["ppo_clipped"],
                                                               final_reward=[0.07] * r["seeds"])))
    assert any("did not learn" in p for p in shape_problems(idle))


def test_bad_setting_names_the_field():
    with pytest.raises(labs.ConfigError, match="learning_rate"):
        labs.config("stability", {"learning_rate": 1.0})
    with pytest.raises(labs.ConfigError, match="reward"):
        labs.config("stability", {"reward": "dense"})
    with pytest.raises(labs.ConfigError, match="minibatch_tokens"):
        labs.config("stability", {"sequences_per_batch": 16, "length": 4, "minibatch_tokens": 64})
    with pytest.raises(labs.ConfigError, match="nonsense"):
        labs.config("stability", {"nonsense": 1})
