"""T3c best-of-n (registered design): the estimator, what a run holds, and for every check a
mutation on the lab's own noisy scores that removes the effect (must fail) and one that adds it."""

import copy
import itertools
import statistics

import pytest

from rlhf_core import labs
from rlhf_core.labs import best_of_n as lab


@pytest.fixture(scope="session")
def results(quick_seeds):
    return labs.per_seed_results(quick_seeds("best_of_n"))


def _check(name: str):
    return next(c for c in lab.CHECKS if c.name == name)


def _set_proxy(r: dict, name: str, rows: list[list[float]]) -> dict:
    m = copy.deepcopy(r)
    a = lab.arm(m, name)
    a["proxy"] = rows
    a.update(lab.curves(m, a))
    return m


def _tail_error(r: dict) -> list[list[float]]:
    """A proxy that agrees with gold′ except that it likes gold′'s worst few completions best: the
    error at the top of the proxy's range that bends best-of-n."""
    rows = []
    for gold in r["gold"]:
        row = list(gold)
        for worst in sorted(range(len(row)), key=row.__getitem__)[:2]:
            row[worst] = max(gold) + 1.0
        rows.append(row)
    return rows


def test_estimator_matches_brute_force():
    proxy = [0.3, -1.0, 2.0, 0.7, 1.1]
    gold = [1.0, 2.0, -1.0, 0.5, 0.0]
    for n in range(1, 6):
        subsets = list(itertools.combinations(range(5), n))
        brute = statistics.fmean(gold[max(s, key=proxy.__getitem__)] for s in subsets)
        assert lab.expected_best(proxy, gold, n)[1] == pytest.approx(brute)
    assert lab.kl_best_of_n(1) == 0


def test_one_pool_feeds_every_arm(results):
    for r in results:
        cfg = r["config"]
        assert [a["name"] for a in r["arms"]] == ["clean", "flip25", "flip35", "blind", "control"]
        assert r["n"][0] == 1 and r["n"][-1] == cfg["pool"] and r["sqrt_kl"][0] == 0
        assert len(r["gold"]) == cfg["prompts"] and all(len(row) == cfg["pool"] for row in r["gold"])
        for a in r["arms"]:
            assert len(a["proxy"]) == cfg["prompts"] and all(len(row) == cfg["pool"] for row in a["proxy"])
            # facts of the estimator, not findings: a ranker's expected best of its own score never falls
            assert all(y >= x - 1e-9 for x, y in zip(a["proxy_curve"], a["proxy_curve"][1:]))
        assert lab.arm(r, "control")["proxy"] == r["gold"]
        assert not lab.bends(r, lab.arm(r, "control"))
        # the noisy proxies learnt the same pairs, so they differ from the clean one only through the flips
        assert lab.arm(r, "flip25")["proxy"] != lab.arm(r, "clean")["proxy"]


def test_clean_no_bend_fails_when_the_clean_proxy_ranks_the_worst_first(results):
    check = _check("clean_proxy_no_bend")
    for r in results:
        anti = _set_proxy(r, "clean", [[-x for x in row] for row in r["gold"]])
        assert check.test(anti) and "bent" in check.test(anti)
        judge = _set_proxy(r, "clean", copy.deepcopy(r["gold"]))
        assert check.test(judge) is None


@pytest.mark.parametrize("name", ["flip25", "flip35", "blind"])
def test_bend_checks_fail_without_a_tail_error_and_pass_with_one(results, name):
    check = _check(f"{name}_bends")
    for r in results:
        honest = _set_proxy(r, name, copy.deepcopy(r["gold"]))
        assert check.test(honest), "ranking by the judge itself must not bend"
        planted = _set_proxy(r, name, _tail_error(r))
        assert check.test(planted) is None, check.test(planted)


def test_design_and_settings():
    cfg = labs.config("best_of_n", labs.evidence_settings("best_of_n"))
    assert lab.design(cfg)["max_n"] == 256 and lab.design(labs.config("best_of_n"))["max_n"] == 128 and {a["role"] for a in lab.design(cfg)["arms"]} == {
        "null", "effect", "control"}
    with pytest.raises(labs.ConfigError, match="pool"):
        labs.config("best_of_n", {"pool": 512, "prompts": 64})
