"""Every lab's verdict on two seeds, and a mutation test for every check: the lab's own noisy output
with the claimed effect removed (shuffled, reversed, or a proxy swapped for the judge) must fail
exactly that check. Idealised inputs are not used here."""

import copy
import json

import numpy as np
import pytest

from rlhf_core import labs
from rlhf_core.labs.support import verdict as verdicts

from ..conftest import cli

# the state each lab's --quick settings reach on two seeds (docs/lab-evidence.json has the defaults on 5)
EXPECTED = {
    "pipeline": "reproduced",
    "compounding_error": "reproduced",
    "rm_curve": "reproduced",
    "overoptimization": None,  # either: the gold fall is a finding (docs/lab-evidence.json), tested below both ways
    "best_of_n": None,  # either: the bend is a finding (docs/lab-evidence.json), tested below both ways
    "prompt_oirl": "reproduced",
    "action_space": "reproduced",
    "credit": "illustration",
    "stability": None,  # either: the registered checks' outcome is the finding (docs/lab-evidence.json)
    "offline_online": None,  # either: which of offline and online wins is the finding, tested below both ways
}


@pytest.mark.parametrize("name", list(labs.LABS))
def test_quick_settings_on_two_seeds(name, quick_seeds):
    result = quick_seeds(name)
    v = labs.verdict(name, result)
    assert v["n"] == 2 and len(set(v["seeds"])) == 2, "two distinct seeds"
    if EXPECTED[name] is None:
        assert v["state"] in ("reproduced", "not reproduced")
    else:
        assert v["state"] == EXPECTED[name], v["summary"]
    if v["state"] == "reproduced":
        assert v["k"] == 2


# ---- mutations: (lab, check, how the effect is removed) ------------------------------------------

def _unresolved_gain(a: str, b: str):
    """Keep every prompt's noise but shrink the mean paired gain of `a` over `b` to half its
    standard error: a gain that may be real but is not resolved, which a check must not call
    reproduced. (A random per-prompt swap of the two policies left a strong gain standing on some
    seeds, so it removed the effect only by luck.)"""
    def mutate(r):
        pol = r["policies"]
        diffs = np.array(pol[a]["gold_per_prompt"]) - np.array(pol[b]["gold_per_prompt"])
        shift = diffs.mean() - 0.5 * diffs.std(ddof=1) / np.sqrt(len(diffs))
        pol[a]["gold_per_prompt"] = [float(x - shift) for x in pol[a]["gold_per_prompt"]]
    return mutate


def _online_as_bc(r):
    r["online_mistakes"] = list(r["bc_mistakes"])
    r["fits"]["online"] = dict(r["fits"]["bc"])


def _bc_as_online(r):
    r["bc_mistakes"] = list(r["online_mistakes"])
    r["fits"]["bc"] = dict(r["fits"]["online"])


def _reverse_accuracy(r):
    r["accuracy"] = r["accuracy"][::-1]


def _reverse_proxy(r):
    for run in r["runs"]:
        run["proxy"] = run["proxy"][::-1]


def _gold_is_proxy(r):
    for run in r["runs"]:
        run["gold"], run["gold_sem"] = list(run["proxy"]), list(run["proxy_sem"])


def _swap_label_budgets(r):
    runs = [x for x in r["runs"] if x["beta"] == min(y["beta"] for y in r["runs"])]
    small, large = min(runs, key=lambda x: x["labels"]), max(runs, key=lambda x: x["labels"])
    small["labels"], large["labels"] = large["labels"], small["labels"]


def _proxy_is_gold(r):
    r["scores"]["proxy"] = copy.deepcopy(r["scores"]["gold"])


def _shuffle_predictions(r):
    rng = np.random.default_rng(0)
    r["predicted"] = [r["predicted"][i] for i in rng.permutation(len(r["predicted"]))]


def _reverse_vocab(r):
    """The measured steps read against the vocabulary sizes in reverse order."""
    for g in ("dense", "sparse"):
        r[f"{g}_steps"] = r[f"{g}_steps"][::-1]


def _sparse_as_dense(r):
    r["sparse_steps"] = list(r["dense_steps"])


def _sparse_constant_gap(r):
    gap = r["sparse_steps"][0] - r["dense_steps"][0]
    r["sparse_steps"] = [None if d is None else d + gap for d in r["dense_steps"]]


def _path_copied(better: str, worse: str):
    """Remove the effect: the better method's reward-KL path becomes the worse one's (every
    prompt's noise kept), so at matched KL there is no gain to find."""
    def mutate(r):
        r["paths"][better] = copy.deepcopy(r["paths"][worse])
    return mutate


def _path_lifted(better: str, worse: str):
    """Add the effect: the better method's path is the worse one's, one gold point higher on every
    prompt after the start."""
    def plant(r):
        path = copy.deepcopy(r["paths"][worse])
        for point in path[1:]:
            point["gold_per_prompt"] = [g + 1.0 for g in point["gold_per_prompt"]]
        r["paths"][better] = path
    return plant


MUTATIONS = [
    ("offline_online", "online_beats_dpo", _path_copied("rlhf", "dpo")),
    ("offline_online", "dpo_beats_sft", _path_copied("dpo", "sft")),
    ("pipeline", "sft_beats_base", _unresolved_gain("sft", "base")),
    ("pipeline", "rlhf_beats_sft", _unresolved_gain("rlhf", "sft")),
    ("compounding_error", "bc_makes_more_mistakes", _bc_as_online),
    ("compounding_error", "bc_grows_superlinearly", _bc_as_online),
    ("compounding_error", "online_grows_linearly", _online_as_bc),
    ("rm_curve", "more_labels_better", _reverse_accuracy),
    ("rm_curve", "largest_above_chance", _reverse_accuracy),
    ("overoptimization", "proxy_rises", _reverse_proxy),
    ("overoptimization", "gold_peaks_and_falls", _gold_is_proxy),
    ("overoptimization", "fewer_labels_peak_earlier", _swap_label_budgets),
    ("prompt_oirl", "oirl_beats_best_single", _shuffle_predictions),
    ("prompt_oirl", "predictions_track_queries", _shuffle_predictions),
    ("action_space", "steps_grow_with_vocab", _reverse_vocab),
    ("action_space", "sparse_needs_more_steps", _sparse_as_dense),
    ("action_space", "gap_widens_with_vocab", _sparse_constant_gap),
]


def test_every_check_has_a_mutation_test():
    covered = {(lab, check) for lab, check, _ in MUTATIONS} | {("best_of_n", "gold_bends_over")}  # below
    for name in labs.LABS:
        if name == "stability":  # its mutations live beside its own tests (test_stability.py)
            continue
        for check in labs.module(name).CHECKS:
            assert (name, check.name) in covered, f"{name}.{check.name} has no mutation test"


# checks whose effect the quick runs may not show on any seed: each also has a test that adds the
# effect to the lab's own output and sees the check pass (below)
EFFECT_ADDED_TESTS = {("overoptimization", "gold_peaks_and_falls"), ("overoptimization", "fewer_labels_peak_earlier"),
                      ("best_of_n", "gold_bends_over"), ("offline_online", "online_beats_dpo"),
                      ("offline_online", "dpo_beats_sft")}


def _fails(name, check, result) -> bool:
    return any(p.startswith(check + ":") for p in labs.shape_problems(name, result))


@pytest.mark.parametrize("name,check,mutate", MUTATIONS, ids=[f"{n}-{c}" for n, c, _ in MUTATIONS])
def test_check_fails_when_the_effect_is_removed(name, check, mutate, quick_seeds):
    held = 0
    for result in labs.per_seed_results(quick_seeds(name)):
        if _fails(name, check, result):
            continue  # nothing to remove on this seed
        held += 1
        mutated = copy.deepcopy(result)
        mutate(mutated)
        assert _fails(name, check, mutated), f"{check} survived the mutation: {labs.shape_problems(name, mutated)}"
    assert held or (name, check) in EFFECT_ADDED_TESTS, f"{check} held on no seed, so the mutation tested nothing"


def _plant_a_tail(r):
    """Add the effect: for each prompt the proxy agrees with the judge, except that it likes the
    judge's worst completion best (the kind of error a proxy is over-optimised into)."""
    proxy = []
    for gold in r["scores"]["gold"]:
        row = list(gold)
        worst = min(range(len(row)), key=row.__getitem__)
        row[worst] = max(row) + 1.0
        proxy.append(row)
    r["scores"]["proxy"] = proxy


def test_best_of_n_bend_check_passes_with_the_effect_and_fails_without(quick_seeds):
    """The lab's own gold scores: a proxy with a planted tail error bends the gold curve over and
    passes; the judge as its own proxy never bends and fails, whatever the seed found."""
    for result in labs.per_seed_results(quick_seeds("best_of_n")):
        planted = copy.deepcopy(result)
        _plant_a_tail(planted)
        assert not any(p.startswith("gold_bends_over:") for p in labs.shape_problems("best_of_n", planted))
        honest = copy.deepcopy(result)
        _proxy_is_gold(honest)
        assert any(p.startswith("gold_bends_over:") for p in labs.shape_problems("best_of_n", honest))


def _plant_a_late_fall(r):
    """Add the effect: the fewest-label run's last third of steps scores its middle third minus 1."""
    runs = [x for x in r["runs"] if x["beta"] == min(y["beta"] for y in r["runs"])]
    small = min(runs, key=lambda x: x["labels"])
    n = len(small["gold"]) // 3
    small["gold"][-n:] = [g - 1.0 for g in small["gold"][n:2 * n]]


def _plant_an_early_peak(r):
    """Add the effect: the fewest-label run peaks at its first step, the most-label run at its last."""
    runs = [x for x in r["runs"] if x["beta"] == min(y["beta"] for y in r["runs"])]
    small, large = min(runs, key=lambda x: x["labels"]), max(runs, key=lambda x: x["labels"])
    small["gold"][:3] = [max(small["gold"]) + 1.0] * 3
    large["gold"][-3:] = [max(large["gold"]) + 1.0] * 3


def test_overoptimization_checks_pass_with_the_effect_and_fail_without(quick_seeds):
    for result in labs.per_seed_results(quick_seeds("overoptimization")):
        for check, plant in (("gold_peaks_and_falls", _plant_a_late_fall),
                             ("fewer_labels_peak_earlier", _plant_an_early_peak)):
            planted = copy.deepcopy(result)
            plant(planted)
            assert not _fails("overoptimization", check, planted), labs.shape_problems("overoptimization", planted)
        honest = copy.deepcopy(result)
        _gold_is_proxy(honest)
        assert _fails("overoptimization", "gold_peaks_and_falls", honest)
        swapped = copy.deepcopy(result)
        _plant_an_early_peak(swapped)
        _swap_label_budgets(swapped)
        assert _fails("overoptimization", "fewer_labels_peak_earlier", swapped)


def test_offline_online_checks_pass_with_the_effect_and_fail_without(quick_seeds):
    """On the lab's own paths: a method lifted one gold point above the other at every KL passes
    its check; the same path under both names fails it, whichever way the seed came out."""
    for result in labs.per_seed_results(quick_seeds("offline_online")):
        for check, better, worse in (("online_beats_dpo", "rlhf", "dpo"), ("dpo_beats_sft", "dpo", "sft")):
            planted = copy.deepcopy(result)
            _path_lifted(better, worse)(planted)
            assert not _fails("offline_online", check, planted), labs.shape_problems("offline_online", planted)
            removed = copy.deepcopy(result)
            _path_copied(better, worse)(removed)
            assert _fails("offline_online", check, removed)


# ---- the three states ----------------------------------------------------------------------------

def _check(name, holds):
    return verdicts.Check(name, "claim", "source", "why", lambda r: None if holds(r) else f"seen {r['x']}")


def test_verdict_states_and_k_of_n():
    checks = [_check("positive", lambda r: r["x"] > 0)]
    runs = [{"x": x, "config": {"seed": i}} for i, x in enumerate([1, 2, 3, 4, -1])]
    v = verdicts.judge(checks, runs)
    assert (v["state"], v["k"], v["n"]) == ("reproduced", 4, 5)  # 4 of 5 is 80 %
    v = verdicts.judge(checks, runs[2:])
    assert (v["state"], v["k"], v["n"]) == ("not reproduced", 2, 3)
    assert "seed 4: positive: seen -1" in v["summary"]
    v = verdicts.judge([], runs, "a mechanism, not a claim")
    assert v["state"] == "illustration" and v["k"] is None and "a mechanism" in v["summary"]


def test_verdict_is_recomputed_from_the_raw_series_not_read_from_the_result(quick_result):
    r = copy.deepcopy(quick_result("rm_curve"))
    r["verdict"] = {"state": "reproduced"}  # a stale verdict stored by older code
    _reverse_accuracy(r)
    assert labs.verdict("rm_curve", r)["state"] == "not reproduced"


def test_cli_reports_k_of_n_and_the_same_verdict_as_the_json():
    args = ["--set=labels=[8,16]", "--set=held_out_pairs=50", "--set=epochs=0.5"]
    out = cli("lab", "rm_curve", "--seeds", "2", "--json", *args)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["config"]["seed"] for r in result["results"]] == [0, 1]
    assert result["verdict"] == labs.verdict("rm_curve", result)
    text = cli("lab", "credit", "--seeds", "0")
    assert text.returncode == 2 and "--seeds" in text.stderr
