"""T1 and T3 labs on the IMDB models: what their results hold (their verdicts and the mutation
tests of every check are in test_verdicts.py), and the facts that hold by construction."""

import math

import pytest

from rlhf_core import labs
from rlhf_core.labs import prompt_oirl


def test_pipeline_rlhf_beats_sft_on_the_gold_reward(quick_result):
    r = quick_result("pipeline")
    pol = r["policies"]
    assert set(pol) == {"base", "sft", "rlhf"}
    for name in pol:
        assert {"gold", "kl"} <= set(pol[name])
    assert pol["rlhf"]["kl"] > pol["sft"]["kl"] > 0  # RL bought its gain with distance from the base
    assert pol["rlhf"]["proxy"] > pol["sft"]["proxy"]  # RL raised the reward model's own score
    for name in pol:
        assert len(pol[name]["gold_per_prompt"]) == r["config"]["eval_prompts"]
    assert len(r["samples"]["rlhf"]) > 0 and r["stages"]["rl"]["curve"]["step"][-1] == r["config"]["rl_steps"]


def test_rm_curve_accuracy_rises_with_labels(quick_result):
    r = quick_result("rm_curve")
    assert len(r["labels"]) == len(r["accuracy"]) >= 3
    assert all(0 <= a <= 1 for a in r["accuracy"])
    assert r["fit"]["b"] > 0


def test_prompt_oirl_beats_the_best_single_prompt(quick_result):
    r = quick_result("prompt_oirl")
    for key in ("best_single", "oirl", "oracle"):
        assert math.isfinite(r[key])
    assert r["policy_calls_to_choose"] == 0
    assert r["oracle"] >= r["oirl"]  # by construction: both read the same measured matrix
    n_prompts = r["config"]["prompts"]
    assert len(r["measured"]) == len(r["predicted"]) == r["config"]["test_queries"]
    assert all(len(row) == n_prompts for row in r["measured"])
    assert prompt_oirl.query_correlation(r)[1] == r["config"]["test_queries"] * n_prompts


def test_labs_reject_settings_over_budget_or_out_of_range():
    with pytest.raises(labs.ConfigError, match="labels"):
        labs.config("rm_curve", {"labels": [2000, 2000]})
    with pytest.raises(labs.ConfigError, match="labels"):
        labs.config("rm_curve", {"labels": []})
    with pytest.raises(labs.ConfigError, match="features"):
        labs.config("prompt_oirl", {"features": "everything"})
