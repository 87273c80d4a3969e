"""T1 offline vs online (registered design): what a run holds, the frontier arithmetic, and for
every check a mutation on the lab's own noisy paths that removes the effect (must fail) and one
that adds it (must pass)."""

import copy

import pytest

from rlhf_core import labs
from rlhf_core.labs import offline_online as lab


@pytest.fixture(scope="session")
def results(quick_seeds):
    return labs.per_seed_results(quick_seeds("offline_online"))


def _check(name: str):
    return next(c for c in lab.CHECKS if c.name == name)


def _lift(r: dict, condition: str, method: str, by: float) -> dict:
    """Every evaluation after the start of the method's runs in the condition, `by` gold points higher
    on every prompt (noise kept)."""
    m = copy.deepcopy(r)
    for run in m["runs"]:
        if run["condition"] == condition and run["method"] == method:
            for point in run["path"][1:]:
                point["gold_per_prompt"] = [g + by for g in point["gold_per_prompt"]]
                point["gold"] += by
    return m


def _copy_method(r: dict, condition: str, to: str, source: str) -> dict:
    """The `to` method's runs in the condition replaced by the `source` method's (no gap left)."""
    m = copy.deepcopy(r)
    sources = [x for x in m["runs"] if x["condition"] == condition and x["method"] == source]
    others = [x for x in m["runs"] if not (x["condition"] == condition and x["method"] == to)]
    m["runs"] = others + [dict(copy.deepcopy(x), method=to) for x in sources]
    return m


def test_both_conditions_and_both_sweeps_are_run(results):
    for r in results:
        cfg = r["config"]
        specs = {(x["condition"], x["method"], x["beta"]) for x in r["runs"]}
        assert specs == {(c, m, b) for c in lab.CONDITIONS for m in lab.METHODS
                         for b in (cfg["dpo_betas"] if m == "dpo" else cfg["rl_betas"])}
        for run in r["runs"]:
            assert run["path"][0]["step"] == 0 and run["path"][0]["kl"] == 0
            assert run["path"][-1]["step"] == cfg["steps"] - cfg["steps"] % cfg["eval_every"]
            assert all(len(p["gold_per_prompt"]) == cfg["eval_prompts"] for p in run["path"])
        for condition in lab.CONDITIONS:
            assert r["pairs"][condition]["count"] == cfg["pairs"]
            assert 0 <= r["reward_model"][condition]["held_out_pair_accuracy"] <= 1
        ref, off = r["pairs"]["reference"]["examples"][0], r["pairs"]["off_policy"]["examples"][0]
        assert ref["chosen"] != ref["rejected"] and off["chosen"] != off["rejected"]


def test_frontier_takes_the_best_checkpoint_per_bin():
    point = lambda kl, gold: {"kl": kl, "gold": gold, "gold_per_prompt": [gold, gold]}  # noqa: E731
    r = {"runs": [{"condition": "reference", "method": "dpo", "path": [point(0, 0.0), point(1.5, 0.2), point(3, 0.1)]},
                  {"condition": "reference", "method": "dpo", "path": [point(0, 0.0), point(1.2, 0.5), point(9, 0.9)]},
                  {"condition": "reference", "method": "online", "path": [point(0, 0.0), point(1.7, 0.4)]}]}
    f = lab.frontier(r, "reference", "dpo")
    assert {i: p["gold"] for i, p in f.items()} == {0: 0.0, 1: 0.5, 2: 0.1, 4: 0.9}
    g = lab.gap(r, "reference")
    assert g["bins"] == [(0.0, 1.0), (1.0, 2.0)] and g["per_prompt"] == pytest.approx([-0.05, -0.05])
    assert lab.gap(r, "off_policy") is None


def test_online_ahead_off_policy_fails_without_a_gap_and_passes_with_one(results):
    check = _check("online_ahead_off_policy")
    for r in results:
        assert check.test(_copy_method(r, "off_policy", "online", "dpo"))
        assert check.test(_lift(r, "off_policy", "online", 3.0)) is None


def test_no_online_edge_on_policy_fails_when_online_is_lifted(results):
    check = _check("no_online_edge_on_policy")
    for r in results:
        assert check.test(_lift(r, "reference", "online", 3.0))
        assert check.test(_copy_method(r, "reference", "online", "dpo")) is None


def test_gap_grows_off_policy_follows_the_conditions(results):
    check = _check("gap_grows_off_policy")
    for r in results:
        same = _copy_method(_copy_method(r, "off_policy", "online", "dpo"), "reference", "online", "dpo")
        assert check.test(same), "equal gaps must fail"
        grown = _lift(same, "off_policy", "online", 3.0)
        assert check.test(grown) is None
        swapped = _lift(same, "reference", "online", 3.0)
        assert check.test(swapped)


def test_design_names_both_pair_conditions():
    d = lab.design(labs.config("offline_online"))
    assert d["pair_conditions"] == ["reference", "off_policy"] and d["kl_bins"][-1] == [8.0, 16.0]
    with pytest.raises(labs.ConfigError, match="steps"):
        labs.config("offline_online", {**labs.evidence_settings("offline_online"), "steps": 48})
