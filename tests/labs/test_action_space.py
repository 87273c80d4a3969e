"""T4: steps to learn grow with the vocabulary V, and a sparse sequence reward needs more than a dense
per-token one; the credit view gives PPO per-token advantages and GRPO/RLOO one number per completion."""

import math

import numpy as np
import pytest

from rlhf_core import labs
from rlhf_core.labs import credit
from rlhf_core.labs.support.token_task import TokenTask


def test_without_the_trap_every_token_has_a_right_successor_on_the_home_cycle():
    task = TokenTask(vocab_size=64, home_size=4, trap=False, seed=0)
    assert (task.home_next < 4).all()  # away tokens point back home, home tokens follow the cycle
    demos = task.demonstrations(10, 12, np.random.default_rng(0))
    assert (demos < 4).all() and not task.judge(demos)[0].any()


def test_quick_run_reproduces_the_published_shape(quick_result):
    r = quick_result("action_space")
    n = len(r["vocab"])
    for key in ("dense_steps", "sparse_steps", "sparse_over_dense", "dense_samples", "sparse_samples"):
        assert len(r[key]) == n
    for g in ("dense", "sparse"):
        seeds = r["config"]["seeds"]
        assert len(r["per_seed"][g]["steps"]) == n and all(len(s) == seeds for s in r["per_seed"][g]["steps"])
        assert len(r["curves"][g]) == n
        for row, reached in zip(r["curves"][g], r["per_seed"][g]["reached"]):
            for curve, ok in zip(row, reached):
                assert len(curve["step"]) == len(curve["accuracy"]) > 0
                # a curve ends where the run stopped: at the threshold, or below it at the cap
                assert (curve["accuracy"][-1] >= r["threshold"]) == ok
    assert r["step_cap"] > 0 and 0 < r["threshold"] < 1 and r["runtime_s"] > 0 and r["timings"]
    assert labs.shape_problems("action_space", r) == []
    assert all(d < s for d, s in zip(r["dense_steps"], r["sparse_steps"]))


def test_runs_that_never_reach_the_threshold_are_inconclusive_not_evidence(quick_result):
    r = dict(quick_result("action_space"))
    never = dict(r, dense_steps=[None] * len(r["vocab"]), sparse_steps=[None] * len(r["vocab"]))
    problems = labs.shape_problems("action_space", never)
    assert any("inconclusive" in p for p in problems) and any("did not reach" in p for p in problems)


def test_a_run_that_never_reaches_the_threshold_is_reported_not_dropped():
    r = labs.run("action_space", {"vocab": [8, 256], "seeds": 1, "step_cap": 20})
    assert r["per_seed"]["dense"]["reached"][1] == [False]
    assert r["dense_steps"][1] is None and r["per_seed"]["dense"]["steps"][1] == [None]
    assert r["per_seed"]["dense"]["final_accuracy"][1][0] < r["threshold"]
    assert r["dense_steps"][0] is not None  # V=8 is learnt within 20 steps


def test_bad_setting_names_the_field():
    with pytest.raises(labs.ConfigError, match="vocab"):
        labs.config("action_space", {"vocab": [8, 100_000]})
    with pytest.raises(labs.ConfigError, match="vocab"):
        labs.config("action_space", {"vocab": [4, 64]})  # not larger than the home cycle
    with pytest.raises(labs.ConfigError, match="vocab"):
        labs.config("action_space", {"vocab": [2048, 2000, 1900]})  # over the cost budget
    with pytest.raises(labs.ConfigError, match="threshold"):
        labs.config("action_space", {"threshold": 1.5})
    with pytest.raises(labs.ConfigError, match="nonsense"):
        labs.config("action_space", {"nonsense": 1})
    assert labs.config("action_space", {"vocab": [64, 8, 64]}).vocab == [8, 64]


def test_largest_settings_are_allowed():
    from rlhf_core.labs import action_space

    labs.config("action_space", action_space.LARGEST)
    labs.config("credit", credit.LARGEST)


# ---- the credit view ------------------------------------------------------------------------------

def test_gae_is_the_discounted_sum_of_td_errors():
    rewards = np.array([[0.0, 0.0, 1.0, 0.0], [0.5, -0.5, 0.0, 2.0]])
    values = np.array([[0.2, 0.4, 0.6, 0.0], [0.0, 1.0, 0.5, 0.3]])
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    adv = credit.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # lambda = 1: the Monte-Carlo return from t minus V(s_t)
    assert adv[0, :3] == pytest.approx([1 - 0.2, 1 - 0.4, 1 - 0.6])
    assert adv[0, 3] == 0  # past the completion's end
    assert adv[1] == pytest.approx([2.0 - 0.0, 1.5 - 1.0, 2.0 - 0.5, 2.0 - 0.3])
    one_step = credit.gae(rewards, values, mask, gamma=1.0, lam=0.0)
    assert one_step[1, :3] == pytest.approx([0.5 + 1.0 - 0.0, -0.5 + 0.5 - 1.0, 0.0 + 0.3 - 0.5])


def test_group_advantages_are_one_number_per_completion_that_sums_to_zero():
    scores = np.array([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 1.0, -1.0])
    grpo, rloo = credit.group_advantages(scores, group_size=4)
    assert grpo.reshape(2, 4).sum(1) == pytest.approx([0, 0], abs=1e-9)
    assert rloo.reshape(2, 4).sum(1) == pytest.approx([0, 0], abs=1e-9)
    assert rloo[3] == pytest.approx(6.0 - 2.0)
    assert grpo[0] == pytest.approx((1.0 - 3.0) / (np.std([1, 2, 3, 6], ddof=1) + 1e-4))


def test_credit_view_on_the_playground_policy(quick_result):
    r = quick_result("credit")
    cfg = r["config"]
    samples = r["samples"]
    assert len(samples) == cfg["prompts"] * cfg["group_size"]
    for s in samples:
        n = len(s["tokens"])
        assert 0 < n <= cfg["response_length"]
        for key in ("values", "gae", "gae_whitened", "rewards", "logratio", "returns"):
            assert len(s[key]) == n and all(math.isfinite(x) for x in s[key])
        # the score is paid at the last token, on top of the per-token KL penalty
        kl_part = [-cfg["kl_coef"] * x for x in s["logratio"]]
        assert s["rewards"][-1] == pytest.approx(kl_part[-1] + s["score"], abs=2e-3)
        assert s["rewards"][:-1] == pytest.approx(kl_part[:-1], abs=2e-3)
        # GAE's own recursion, recomputed from the stored rewards and values
        adv = credit.gae(np.array([s["rewards"]]), np.array([s["values"]]), np.ones((1, n), bool),
                         r["gamma"], r["lam"])[0]
        assert s["gae"] == pytest.approx(list(adv), abs=2e-3)
    for g in range(cfg["prompts"]):
        group = [s for s in samples if s["group"] == g]
        assert sum(s["grpo"] for s in group) == pytest.approx(0, abs=1e-2)
        assert sum(s["rloo"] for s in group) == pytest.approx(0, abs=1e-2)
    assert r["summary"]["gae_within_completion_std"] > 0  # PPO's credit varies along a completion
    assert len(r["ppo_history"]["step"]) == cfg["ppo_steps"]
    assert labs.verdict("credit", r)["state"] == "illustration"  # its facts hold by construction


def test_the_figures_draw_both_results(quick_result):
    from rlhf_core.labs.support import figures

    r = quick_result("action_space")
    assert len(figures.action_space(r)) == 3
    missed = dict(r, sparse_steps=r["sparse_steps"][:-1] + [None])
    assert any("not reached" in (t.name or "") for t in figures.action_space(missed)[0].data)
    figs = figures.credit(quick_result("credit"), sample=1)
    assert len(figs) == 4
