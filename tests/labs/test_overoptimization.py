"""T3b over-optimisation (registered design): what a run holds, and for every check a mutation on
the lab's own noisy output that removes the effect (must fail) and one that adds it (must pass)."""

import copy
import math

import pytest

from rlhf_core import labs
from rlhf_core.labs import overoptimization as lab


@pytest.fixture(scope="session")
def results(quick_seeds):
    return labs.per_seed_results(quick_seeds("overoptimization"))


def _check(name: str):
    return next(c for c in lab.CHECKS if c.name == name)


def _arm(r: dict, name: str) -> dict:
    return lab.arm(r, name)


def _sorted_rising(a: dict) -> None:
    """Remove a fall: the arm's evaluations reordered so that the judge's mean only rises (every
    prompt's noise kept, the KLs left in place)."""
    order = sorted(range(len(a["gold"])), key=a["gold"].__getitem__)
    a["gold"] = [a["gold"][i] for i in order]
    a["gold_per_prompt"] = [a["gold_per_prompt"][i] for i in order]


def _plant_fall(a: dict, by: float = 1.0) -> None:
    """Add a fall: the judge's peak moved to the middle evaluation, and every later evaluation one
    point below it on every prompt (noise kept); the proxy made to rise steadily."""
    mid = len(a["gold"]) // 2
    top = max(range(len(a["gold"])), key=a["gold"].__getitem__)
    a["gold_per_prompt"][mid] = [x + 1.0 for x in a["gold_per_prompt"][top]]
    for i in range(mid + 1, len(a["gold"])):
        a["gold_per_prompt"][i] = [x - by for x in a["gold_per_prompt"][top]]
    a["gold"] = [sum(x) / len(x) for x in a["gold_per_prompt"]]
    a["proxy"] = sorted(a["proxy"])
    if a["proxy"][-1] == a["proxy"][mid]:
        a["proxy"][-1] += 1.0


def test_every_arm_is_measured_on_the_schedule(results):
    for r in results:
        cfg = labs.config("overoptimization", r["config"])
        assert [a["name"] for a in r["arms"]] == [a.name for a in lab.arms(cfg)]
        assert {a["role"] for a in r["arms"]} == {"effect", "null", "control"}
        for a in r["arms"]:
            assert a["step"] == lab.eval_steps(cfg)
            assert len(a["kl"]) == len(a["proxy"]) == len(a["gold"]) == len(a["gold_per_prompt"]) == len(a["step"])
            assert all(len(x) == cfg.eval_prompts for x in a["gold_per_prompt"])
            assert abs(a["kl"][0]) < 1e-6 and all(math.isfinite(k) for k in a["kl"])
            assert a["kl"][-1] > a["kl"][1]  # RL moved away from the start
        assert _arm(r, "correlated")["judge"] == "gold-rm" and _arm(r, "proxy50")["judge"] == "gold-prime-rm"
        assert "gold_prime" in _arm(r, "correlated") and "gold_prime" not in _arm(r, "proxy50")
        # the control optimises the judge itself: its proxy is the judge
        assert _arm(r, "control")["proxy"] == pytest.approx(_arm(r, "control")["gold"], abs=1e-3)


def test_learning_rate_climbs_geometrically():
    cfg = labs.config("overoptimization")
    lrs = [lab.lr_at(cfg, s) for s in range(cfg.rl_steps)]
    assert lrs[0] == pytest.approx(cfg.lr_start) and lrs[-1] == pytest.approx(cfg.lr_end)
    assert all(b > a for a, b in zip(lrs, lrs[1:]))


def test_proxy_rises_fails_when_the_proxies_are_reversed_and_passes_when_they_rise(results):
    for r in results:
        m = copy.deepcopy(r)
        for a in m["arms"]:
            a["proxy"] = sorted(a["proxy"], reverse=True)
        assert _check("proxy_rises").test(m)
        for a in m["arms"]:
            a["proxy"] = sorted(a["proxy"])
            a["proxy"][-1] += 1e-3  # strictly above the first
        assert _check("proxy_rises").test(m) is None


def test_gold_rises_first_fails_without_a_rise_and_passes_with_one(results):
    check = _check("gold_rises_first")
    for r in results:
        flat = copy.deepcopy(r)
        a = _arm(flat, "proxy50")
        a["gold_per_prompt"] = [list(a["gold_per_prompt"][0]) for _ in a["gold_per_prompt"]]
        a["gold"] = [a["gold"][0]] * len(a["gold"])
        assert check.test(flat) and "never rose" in check.test(flat)
        risen = copy.deepcopy(r)
        a = _arm(risen, "proxy50")
        a["gold_per_prompt"][2] = [x + 1.0 for x in a["gold_per_prompt"][0]]
        assert check.test(risen) is None


@pytest.mark.parametrize("check_name,arm_name", [("gold_peaks_and_falls", "proxy50"),
                                                 ("noisy_proxy_falls", "proxy50_flip25")])
def test_fall_checks_fail_without_the_fall_and_pass_with_it(results, check_name, arm_name):
    check = _check(check_name)
    for r in results:
        removed = copy.deepcopy(r)
        _sorted_rising(_arm(removed, arm_name))
        assert check.test(removed), "a judge that only rises must fail"
        planted = copy.deepcopy(r)
        _plant_fall(_arm(planted, arm_name))
        assert check.test(planted) is None, check.test(planted)
        proxy_falls_too = copy.deepcopy(planted)
        a = _arm(proxy_falls_too, arm_name)
        a["proxy"] = sorted(a["proxy"], reverse=True)
        assert check.test(proxy_falls_too) and "proxy fell too" in check.test(proxy_falls_too)


def test_more_labels_peak_later_fails_when_the_large_proxy_falls_as_early(results):
    check = _check("more_labels_peak_later")
    for r in results:
        m = copy.deepcopy(r)
        _plant_fall(_arm(m, "proxy50"))
        large = max(r["config"]["labels"])
        m["arms"] = [dict(copy.deepcopy(_arm(m, "proxy50")), name=f"proxy{large}", labels=large)
                     if a["name"] == f"proxy{large}" else a for a in m["arms"]]
        assert check.test(m) and "no later" in check.test(m)
        later = copy.deepcopy(r)
        _sorted_rising(_arm(later, f"proxy{large}"))
        assert check.test(later) is None


@pytest.mark.parametrize("name,arm_name", [("correlated_judge_holds", "correlated"), ("control_holds", "control")])
def test_hold_checks_fail_when_the_judge_falls(results, name, arm_name):
    check = _check(name)
    for r in results:
        fell = copy.deepcopy(r)
        _plant_fall(_arm(fell, arm_name))
        assert check.test(fell)
        held = copy.deepcopy(r)
        _sorted_rising(_arm(held, arm_name))
        assert check.test(held) is None


def test_design_lists_every_arm_and_settings_are_checked():
    d = lab.design(labs.config("overoptimization", labs.evidence_settings("overoptimization")))
    assert [a["name"] for a in d["arms"]] == ["proxy50", "proxy300", "proxy2000", "proxy50_flip25", "correlated",
                                              "control"]
    light = lab.design(labs.config("overoptimization"))  # the interactive default: 300 labels at most
    assert [a["name"] for a in light["arms"]] == ["proxy50", "proxy300", "proxy50_flip25", "correlated", "control"]
    with pytest.raises(labs.ConfigError, match="rl_steps"):
        labs.config("overoptimization", {"rl_steps": 64})
    with pytest.raises(labs.ConfigError, match="flip"):
        labs.config("overoptimization", {"flip": 0.6})
