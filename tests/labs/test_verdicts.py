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
    "overoptimization": None,  # either: the registered checks' outcome is the finding (test_overoptimization.py)
    "best_of_n": None,  # either: the registered checks' outcome is the finding (test_best_of_n.py)
    "prompt_oirl": "reproduced",
    "action_space": "reproduced",
    "credit": "illustration",
    "stability": None,  # either: the registered checks' outcome is the finding (docs/lab-evidence.json)
    "offline_online": None,  # either: the registered checks' outcome is the finding (test_offline_online.py)
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






MUTATIONS = [
    ("pipeline", "sft_beats_base", _unresolved_gain("sft", "base")),
    ("pipeline", "rlhf_beats_sft", _unresolved_gain("rlhf", "sft")),
    ("compounding_error", "bc_makes_more_mistakes", _bc_as_online),
    ("compounding_error", "bc_grows_superlinearly", _bc_as_online),
    ("compounding_error", "online_grows_linearly", _online_as_bc),
    ("rm_curve", "more_labels_better", _reverse_accuracy),
    ("rm_curve", "largest_above_chance", _reverse_accuracy),
    ("prompt_oirl", "oirl_beats_best_single", _shuffle_predictions),
    ("prompt_oirl", "predictions_track_queries", _shuffle_predictions),
    ("action_space", "steps_grow_with_vocab", _reverse_vocab),
    ("action_space", "sparse_needs_more_steps", _sparse_as_dense),
    ("action_space", "gap_widens_with_vocab", _sparse_constant_gap),
]


# labs whose registered designs keep their mutation and effect-added tests in tests/labs/test_<lab>.py
OWN_TEST_FILES = ("stability", "overoptimization", "best_of_n", "offline_online")


def test_every_check_has_a_mutation_test():
    covered = {(lab, check) for lab, check, _ in MUTATIONS}
    for name in labs.LABS:
        if name in OWN_TEST_FILES:  # their mutations live beside their own tests (test_<lab>.py)
            continue
        for check in labs.module(name).CHECKS:
            assert (name, check.name) in covered, f"{name}.{check.name} has no mutation test"


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
    assert held, f"{check} held on no seed, so the mutation tested nothing"









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
