"""T2: BC's mistakes grow super-linearly in T, the online (DAgger) learner's about linearly."""

import numpy as np
import pytest

from rlhf_core import labs
from rlhf_core.labs.support.token_task import TokenTask


def test_the_automaton_judges_the_expert_perfect_and_a_slip_as_a_mistake():
    task = TokenTask(vocab_size=16, home_size=8, trap=True, seed=0)
    demos = task.demonstrations(20, 30, np.random.default_rng(0))
    wrong, labels = task.judge(demos)
    assert not wrong.any()
    assert (demos[:, 1:] < 8).all()  # experts never leave home
    slipped = demos.copy()
    slipped[0, 5] = 12  # an away token: phase 1 from here on
    wrong, labels = task.judge(slipped)
    assert wrong[0, 4] and not wrong[0, :4].any()
    assert (labels[0, 5:] >= 8).all()  # the expert's rule after the slip stays away


def test_quick_run_reproduces_the_published_shape(quick_result):
    r = quick_result("compounding_error")
    for key in ("horizons", "bc_mistakes", "online_mistakes"):
        assert len(r[key]) == len(r["horizons"]) >= 6
    assert r["bc"]["demo_state_accuracy"] > 0.99  # BC learnt its demonstrations
    assert labs.shape_problems("compounding_error", r) == []
    assert r["bc"]["recovery_rate"] < r["online"]["recovery_rate"]


def test_bad_setting_names_the_field():
    with pytest.raises(labs.ConfigError, match="horizon"):
        labs.config("compounding_error", {"horizon": 5})
    with pytest.raises(labs.ConfigError, match="width"):
        labs.config("compounding_error", {"width": 100})
    with pytest.raises(labs.ConfigError, match="nonsense"):
        labs.config("compounding_error", {"nonsense": 1})
