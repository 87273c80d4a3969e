"""T5: clipped on-policy PPO should work (learn without collapsing) over the widest range of learning rates."""

import copy

import numpy as np
import pytest

from rlhf_core import labs
from rlhf_core.labs import stability
from rlhf_core.labs.stability import METHODS
from rlhf_core.labs.support.token_env import TokenEnv, TokenVecEnv


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


@pytest.fixture(scope="session")
def quick_replicates(quick_seeds):
    """The QUICK settings on 2 replicates with disjoint seeds (the session's shared `quick_seeds`,
    which the page tests draw too)."""
    return labs.per_seed_results(quick_seeds("stability"))


def _check(name: str):
    return next(c for c in stability.CHECKS if c.name == name)


def _with(result: dict, **methods) -> dict:
    """A deep copy of a real result with some learners' data replaced."""
    out = copy.deepcopy(result)
    out["methods"].update(copy.deepcopy(methods))
    return out


def test_quick_run_measures_every_learner_at_every_rate(quick_replicates):
    for r in quick_replicates:
        cfg, seeds, steps = r["config"], r["seeds"], r["steps"]
        assert steps[0] == 0 and steps[-1] == r["steps_per_run"] and steps == sorted(steps)
        for name in METHODS:
            m = r["methods"][name]
            rates = m["learning_rates"]
            assert len(rates) == len(cfg["learning_rates"]) >= 4 and max(rates) >= 10 * min(rates)
            for key in ("final_reward", "collapsed", "largest_drop", "reward_curves", "kl_curves", "update_kl_curves"):
                assert len(m[key]) == len(rates) and all(len(cell) == seeds >= 2 for cell in m[key]), key
            assert all(isinstance(c, bool) for cell in m["collapsed"] for c in cell)
            for curves, finals in zip(m["reward_curves"], m["final_reward"]):
                assert all(len(c) == len(steps) and c[-1] == f for c, f in zip(curves, finals))
        assert r["methods"]["ppo_clipped"]["learning_rates"] == cfg["learning_rates"]
        assert r["methods"]["q_learning"]["learning_rates"] == pytest.approx(
            [lr / cfg["dqn_rate_divisor"] for lr in cfg["learning_rates"]], rel=1e-5)
        ms = r["methods"]
        assert min(min(cell) for cell in ms["ppo_clipped"]["clip_fraction"]) > 0  # the clip acted within one epoch
        assert all(x == 0.0 for cell in ms["ppo_unclipped"]["clip_fraction"] for x in cell)
        assert r["runtime_s"] and "runs" in r["timings"]
    assert quick_replicates[1]["config"]["seed"] == quick_replicates[0]["config"]["seed"] + quick_replicates[0]["seeds"]


# What the QUICK replicates show (scripts/stability_sweep.py --quick reruns them): clipped PPO learns
# and works at more rates than PPO without the clip, but 4 epochs per batch work at as many rates or
# more (they learn faster at the small ones and do not collapse on this grid), so the whole claim is
# not reproduced. The first two checks are asserted; the verdict is an expected failure until it holds.
HOLDING = ("learns", "wider_than_unclipped")


def test_quick_replicates_hold_the_reproduced_checks(quick_replicates):
    for r in quick_replicates:
        for name in HOLDING:
            assert _check(name).test(r) is None, (r["config"]["seed"], name, _check(name).test(r))
    v = labs.verdict("stability", {"results": quick_replicates})
    assert v["n"] == 2 and v["k"] == sum(not labs.shape_problems("stability", r) for r in quick_replicates)
    for p in v["per_seed"]:
        assert all(problem.split(":")[0] in ("wider_than_stale", "wider_than_q_learning") for problem in p["problems"])


@pytest.mark.xfail(strict=True, reason="not reproduced at the QUICK settings: ppo_stale works at as many rates or more")
def test_quick_replicates_reproduce_the_whole_shape(quick_replicates):
    assert labs.verdict("stability", {"results": quick_replicates})["state"] == "reproduced"


def test_learns_fails_without_learning(quick_replicates):
    """ppo_clipped's final rewards replaced by its own untrained policy's (the curves' first points)."""
    for r in quick_replicates:
        m = r["methods"]["ppo_clipped"]
        untrained = dict(m, final_reward=[[curve[0] for curve in cell] for cell in m["reward_curves"]])
        seen = _check("learns").test(_with(r, ppo_clipped=untrained))
        assert seen and "halfway" in seen


@pytest.mark.parametrize("other", ["ppo_unclipped", "ppo_stale", "q_learning"])
def test_wider_than_fails_when_the_learners_are_alike(quick_replicates, other):
    """The other learner given ppo_clipped's own results: a tie, so the check must fail."""
    check = _check(f"wider_than_{other.removeprefix('ppo_')}")
    for r in quick_replicates:
        seen = check.test(_with(r, **{other: r["methods"]["ppo_clipped"]}))
        assert seen and seen.startswith("tied")


@pytest.mark.parametrize("other", ["ppo_unclipped", "ppo_stale", "q_learning"])
def test_wider_than_follows_the_data_when_swapped(quick_replicates, other):
    """ppo_clipped and the other learner swapped: the check's answer flips (where the two differ),
    so it is neither stuck at holding nor at failing."""
    check = _check(f"wider_than_{other.removeprefix('ppo_')}")
    for r in quick_replicates:
        ms = r["methods"]
        before = check.test(r)
        after = check.test(_with(r, ppo_clipped=ms[other], **{other: ms["ppo_clipped"]}))
        if before and before.startswith("tied"):
            assert after and after.startswith("tied")
        else:
            assert (before is None) != (after is None), (before, after)
    if other == "ppo_unclipped":  # this one holds on the real data, so the swap must make it fail
        assert all(check.test(r) is None for r in quick_replicates)


def test_verdict_recomputes_works_from_the_raw_series(quick_replicates):
    r = quick_replicates[0]
    for name in METHODS:
        assert r["methods"][name]["works"] == stability.works(r, name)
    stricter = copy.deepcopy(r)
    stricter["config"]["learn_share"] = 0.99  # the bar is read from the result's own settings
    assert not any(stability.works(stricter, "ppo_clipped")) and _check("learns").test(stricter)
    assert stability.headline(r).startswith("rates (of 4)")


def test_bad_setting_names_the_field():
    with pytest.raises(labs.ConfigError, match="learning_rates"):
        labs.config("stability", {"learning_rates": [0.01, 1.0]})
    with pytest.raises(labs.ConfigError, match="learning_rates"):
        labs.config("stability", {"learning_rates": [0.01]})
    with pytest.raises(labs.ConfigError, match="learning_rates"):
        labs.config("stability", {"learning_rates": [0.001, 0.002, 0.005, 0.01, 0.02, 0.05], "seeds": 3})
    with pytest.raises(labs.ConfigError, match="reward"):
        labs.config("stability", {"reward": "dense"})
    with pytest.raises(labs.ConfigError, match="minibatch_tokens"):
        labs.config("stability", {"sequences_per_batch": 32, "length": 4, "minibatch_tokens": 128})
    with pytest.raises(labs.ConfigError, match="nonsense"):
        labs.config("stability", {"nonsense": 1})
    assert labs.config("stability", {"learning_rates": [0.02, 0.002, 0.002]}).learning_rates == [0.002, 0.02]
