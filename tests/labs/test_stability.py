"""T5: the clip keeps PPO stable under batch reuse, and fresh data beats replayed data (stability lab)."""

import copy

import numpy as np
import pytest

from rlhf_core import labs
from rlhf_core.labs import stability
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
    """A deep copy of a real result with some arms' data replaced."""
    out = copy.deepcopy(result)
    out["methods"].update(copy.deepcopy(methods))
    return out


def _collapsed_everywhere(arm: dict) -> dict:
    """An arm's real data, with every seed at every rate marked collapsed (the effect made extreme)."""
    return dict(arm, collapsed=[[True] * len(cell) for cell in arm["collapsed"]])


def test_quick_run_measures_every_arm_at_every_rate(quick_replicates):
    for r in quick_replicates:
        cfg, seeds, steps = r["config"], r["seeds"], r["steps"]
        assert steps[0] == 0 and steps[-1] == r["steps_per_run"] and steps == sorted(steps)
        names = [a.name for a in stability.arms(labs.config("stability", cfg))]
        assert list(r["methods"]) == names and {"clip_k10", "noclip_k10", "clip_replay3", "q_learning",
                                                "q_learning_v64", "clip_k1_v64"} <= set(names)
        assert r["methods"]["q_learning_v64"]["arm"]["vocab"] == 64 and r["methods"]["q_learning"]["arm"]["vocab"] == 16
        for name in names:
            m = r["methods"][name]
            rates = m["learning_rates"]
            assert len(rates) == len(cfg["learning_rates"]) >= 5 and max(rates) >= 100 * min(rates)
            for key in ("final_reward", "collapsed", "largest_drop", "reward_curves", "kl_curves", "update_kl_curves"):
                assert len(m[key]) == len(rates) and all(len(cell) == seeds for cell in m[key]), key
            assert all(isinstance(c, bool) for cell in m["collapsed"] for c in cell)
            for curves, finals in zip(m["reward_curves"], m["final_reward"]):
                assert all(len(c) == len(steps) and c[-1] == pytest.approx(f, abs=1e-4) for c, f in zip(curves, finals))
        ms = r["methods"]
        assert ms["q_learning"]["learning_rates"] == pytest.approx(
            [lr / cfg["dqn_rate_divisor"] for lr in cfg["learning_rates"]], rel=1e-5)
        # the clip acts with several minibatches, never with one gradient step per batch, never unclipped
        assert max(max(cell) for cell in ms["clip_k1"]["clip_fraction"]) > 0
        assert all(x == 0.0 for cell in ms["clip_k1_m1"]["clip_fraction"] for x in cell)
        assert all(x == 0.0 for cell in ms["noclip_k10"]["clip_fraction"] for x in cell)
        # mechanism, descriptive: at the top rate the unclipped updates move the policy more
        assert ms["noclip_k10"]["update_approx_kl"][-1][0] > ms["clip_k10"]["update_approx_kl"][-1][0]
        assert r["runtime_s"] and "runs" in r["timings"]
    assert quick_replicates[1]["config"]["seed"] == quick_replicates[0]["config"]["seed"] + quick_replicates[0]["seeds"]


def test_replay_arm_fits_older_batches_with_the_fresh_one(monkeypatch):
    """The replay learner's update sees the fresh batch plus the last R batches as collected."""
    from stable_baselines3 import PPO

    sizes, original = [], PPO.train

    def spy(self):
        sizes.append(self.rollout_buffer.buffer_size)
        original(self)

    monkeypatch.setattr(PPO, "train", spy)
    cfg = labs.config("stability", {"steps": 2560, "seeds": 1})
    model = stability._make_learner(stability.arm_named(cfg, "clip_replay3"), cfg, seed=0, learning_rate=1e-3)
    model.learn(stability.budget(cfg))
    assert sizes == [cfg.length * k for k in (1, 2, 3, 4, 4)], sizes  # then always 3 older batches


def test_learns_fails_without_learning(quick_replicates):
    """clip_k1's final rewards replaced by its own untrained policy's (the curves' first points)."""
    for r in quick_replicates:
        m = r["methods"]["clip_k1"]
        untrained = dict(m, final_reward=[[curve[0] for curve in cell] for cell in m["reward_curves"]])
        seen = _check("learns").test(_with(r, clip_k1=untrained))
        assert seen and "halfway" in seen
        learnt = dict(m, final_reward=[[1.0] * len(cell) for cell in m["final_reward"]],
                      collapsed=[[False] * len(cell) for cell in m["collapsed"]])
        assert _check("learns").test(_with(r, clip_k1=learnt)) is None  # the effect added


def test_null_arms_match_on_real_runs_and_fails_when_the_arms_differ(quick_replicates):
    for r in quick_replicates:
        assert _check("null_arms_match").test(r) is None, stability.null_gap(r)
        seen = _check("null_arms_match").test(_with(r, noclip_k1_m1=r["methods"]["noclip_k1"]))
        assert seen and "differ by up to" in seen


def test_clip_wider_with_reuse_fails_on_a_tie_and_passes_with_the_effect(quick_replicates):
    check = _check("clip_wider_with_reuse")
    for r in quick_replicates:
        ms = r["methods"]
        assert check.test(_with(r, noclip_k10=ms["clip_k10"])).startswith("at K = 10")
        # the effect added: unclipped collapses at every rate, clipped at none
        assert check.test(_with(r, clip_k10=ms["clip_k1_m1"], noclip_k10=_collapsed_everywhere(ms["noclip_k10"]))) is None


def test_unclipped_band_shrinks_fails_when_reuse_does_no_harm(quick_replicates):
    check = _check("unclipped_band_shrinks")
    for r in quick_replicates:
        ms = r["methods"]
        seen = check.test(_with(r, noclip_k4=ms["noclip_k1"], noclip_k10=ms["noclip_k1"]))
        assert seen and "does not shrink" in seen
        shrinking = _with(r, noclip_k1=ms["clip_k1_m1"], noclip_k4=ms["clip_k1_m1"],
                          noclip_k10=_collapsed_everywhere(ms["noclip_k10"]))
        assert check.test(shrinking) is None


def test_clipped_band_holds_fails_when_reuse_narrows_it(quick_replicates):
    check = _check("clipped_band_holds")
    for r in quick_replicates:
        ms = r["methods"]
        seen = check.test(_with(r, clip_k1=ms["clip_k1_m1"], clip_k10=_collapsed_everywhere(ms["clip_k10"])))
        assert seen and "narrowed" in seen
        assert check.test(_with(r, clip_k1=ms["clip_k1_m1"], clip_k4=ms["clip_k1_m1"], clip_k10=ms["clip_k1_m1"])) is None


def test_fresh_beats_replay_follows_the_data(quick_replicates):
    check = _check("fresh_beats_replay")
    for r in quick_replicates:
        ms = r["methods"]
        seen = check.test(_with(r, clip_replay3=ms["clip_k4"]))
        assert seen and seen.startswith("tied")
        assert check.test(_with(r, clip_k4=ms["clip_k1_m1"], clip_replay3=_collapsed_everywhere(ms["clip_replay3"]))) is None
        before = check.test(r)
        after = check.test(_with(r, clip_k4=ms["clip_replay3"], clip_replay3=ms["clip_k4"]))
        if before and before.startswith("tied"):
            assert after and after.startswith("tied")
        else:
            assert (before is None) != (after is None), (before, after)


def test_value_based_checks_follow_the_data(quick_replicates):
    ties, grows = _check("value_based_ties_small"), _check("value_based_falls_behind")
    for r in quick_replicates:
        ms = r["methods"]
        assert ties.test(_with(r, q_learning=ms["clip_k1"])) is None  # identical learners tie
        # the effect removed: DQN broken on the small action space already, so no tie
        broken = _collapsed_everywhere(ms["q_learning"])
        seen = ties.test(_with(r, q_learning=broken, clip_k1=ms["clip_k1_m1"] | {"final_reward": [
            [1.0] * len(c) for c in ms["clip_k1_m1"]["final_reward"]]}))
        assert seen and "not a tie" in seen
        # the 64-token arms given the 16-token arms' results: the lead cannot grow
        same = _with(r, clip_k1_v64=ms["clip_k1"], q_learning_v64=ms["q_learning"])
        assert grows.test(same) and "did not grow" in grows.test(same)
        # the effect added: a tie on 16 tokens, and on 64 DQN collapses at every rate while PPO works as on 16
        added = _with(r, q_learning=ms["clip_k1"] | {"arm": dict(ms["q_learning"]["arm"])},
                      q_learning_v64=_collapsed_everywhere(ms["q_learning_v64"]),
                      clip_k1_v64=ms["clip_k1"] | {"arm": dict(ms["clip_k1"]["arm"])})
        if any(stability.works(r, "clip_k1")):
            assert grows.test(added) is None, grows.test(added)


def test_verdict_recomputes_from_the_raw_series(quick_replicates):
    r = quick_replicates[0]
    for name in r["methods"]:
        assert r["methods"][name]["works"] == stability.works(r, name)
    stricter = copy.deepcopy(r)
    stricter["config"]["learn_share"] = 0.99  # the bar is read from the result's own settings
    assert not any(stability.works(stricter, "clip_k1")) and _check("learns").test(stricter)
    assert stability.headline(r).startswith("stable rates (of 5)")


def test_design_lists_every_arm_with_a_role():
    cfg = labs.config("stability")
    d = stability.design(cfg)
    assert [a["name"] for a in d["arms"]] == [a.name for a in stability.arms(cfg)]
    assert {a["role"] for a in d["arms"]} == {"effect", "control", "null"} and d["max_reuse_epochs"] == 10
    assert all(a["expect"] for a in d["arms"])


def test_bad_setting_names_the_field():
    with pytest.raises(labs.ConfigError, match="learning_rates"):
        labs.config("stability", {"learning_rates": [0.01, 1.0]})
    with pytest.raises(labs.ConfigError, match="learning_rates"):
        labs.config("stability", {"learning_rates": [0.01]})
    with pytest.raises(labs.ConfigError, match="learning_rates"):
        labs.config("stability", {"learning_rates": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1], "seeds": 3})
    with pytest.raises(labs.ConfigError, match="reuse_epochs"):
        labs.config("stability", {"reuse_epochs": [4, 10]})
    with pytest.raises(labs.ConfigError, match="reward"):
        labs.config("stability", {"reward": "dense"})
    with pytest.raises(labs.ConfigError, match="minibatches"):
        labs.config("stability", {"minibatches": 3})
    with pytest.raises(labs.ConfigError, match="nonsense"):
        labs.config("stability", {"nonsense": 1})
    assert labs.config("stability", {"learning_rates": [0.02, 0.002, 0.002]}).learning_rates == [0.002, 0.02]
