"""T1 and T3 labs on the IMDB models: what their results hold (their verdicts and the mutation
tests of every check are in test_verdicts.py), and the facts that hold by construction."""

import math

import pytest

from rlhf_core import labs
from rlhf_core.labs import best_of_n, overoptimization, prompt_oirl


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


def test_overoptimization_gold_peaks_and_falls_while_proxy_rises(quick_result):
    r = quick_result("overoptimization")
    assert len(r["runs"]) == len(r["config"]["labels"]) * len(r["config"]["betas"])
    for run in r["runs"]:
        assert {"beta", "labels", "sqrt_kl", "proxy", "gold"} <= set(run)
        assert len(run["sqrt_kl"]) == len(run["proxy"]) == len(run["gold"]) == r["config"]["rl_steps"]
        assert all(x >= 0 and math.isfinite(x) for x in run["sqrt_kl"])
    assert overoptimization.peak(r["runs"][0])["index"] < len(r["runs"][0]["gold"])


def test_best_of_n_curves_come_from_the_stored_scores(quick_result):
    r = quick_result("best_of_n")
    assert len(r["n"]) == len(r["sqrt_kl"]) == len(r["proxy"]) == len(r["gold"])
    assert r["sqrt_kl"][0] == 0 and r["n"][0] == 1
    assert len(r["scores"]["proxy"]) == r["config"]["prompts"]
    assert all(len(row) == r["config"]["max_n"] for row in r["scores"]["gold"])
    assert best_of_n.curves(r)["gold"] == pytest.approx(r["gold"])
    # facts of the estimator, not findings: the proxy's expected best never falls as n grows
    assert all(b >= a - 1e-9 for a, b in zip(r["proxy"], r["proxy"][1:]))


def test_best_of_n_estimator_matches_brute_force():
    import itertools
    import statistics

    proxy = [0.3, -1.0, 2.0, 0.7, 1.1]
    gold = [1.0, 2.0, -1.0, 0.5, 0.0]
    for n in range(1, 6):
        subsets = list(itertools.combinations(range(5), n))
        brute = statistics.fmean(gold[max(s, key=lambda i: proxy[i])] for s in subsets)
        assert best_of_n.expected_best(proxy, gold, n)[1] == pytest.approx(brute)
    assert best_of_n.kl_best_of_n(1) == 0


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
    with pytest.raises(labs.ConfigError, match="rl_steps"):
        labs.config("overoptimization", {"rl_steps": 61})
    with pytest.raises(labs.ConfigError, match="max_n"):
        labs.config("best_of_n", {"max_n": 256, "prompts": 64})
    with pytest.raises(labs.ConfigError, match="features"):
        labs.config("prompt_oirl", {"features": "everything"})
