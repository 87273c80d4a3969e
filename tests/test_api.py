"""The notebook API (rlhf_core.start / Run): the same worker and store as the app, so a run started
here is a run of the app's, and the other way round."""

import time

import pytest

import rlhf_core
from rlhf_core import plots, runs
from rlhf_core.config import ConfigError, RunConfig

FAST = {"steps": 12, "prompts_per_step": 2, "generations_per_prompt": 2, "response_length": 8}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small run started through the API, with a live beta change at step 2."""
    root = str(tmp_path_factory.mktemp("api") / "runs")
    run = rlhf_core.start("classic-grpo", root=root, **FAST)
    while run.info().steps_done < 2 and run.status not in ("finished", "failed", "crashed"):
        time.sleep(0.2)
    run.set(kl_coef=0.5)
    assert run.wait(timeout=240) == "finished"
    return root, run


@pytest.mark.slow
def test_a_notebook_run_is_an_app_run(finished):
    root, run = finished
    listed = runs.list_runs(root)  # what Runs & Compare lists
    assert [r.id for r in listed] == [run.id] and listed[0].status == "finished"
    assert rlhf_core.open_run(run.id, root).config == RunConfig.parse({**RunConfig().model_dump(),
                                                                      **listed[0].config})
    table = rlhf_core.list_runs(root)
    assert table.loc[0, "id"] == run.id and table.loc[0, "steps_done"] == 12


@pytest.mark.slow
def test_metrics_samples_events_and_the_live_change(finished):
    _, run = finished
    m = run.metrics()
    assert list(m.index) == list(range(1, 13))
    assert {"reward", "kl", "objective", "kl_coef", "entropy"} <= set(m.columns)
    events = run.events()
    assert list(events["name"]) == ["kl_coef"] and events.loc[0, "to"] == 0.5
    changed = int(events.loc[0, "step"])
    assert 2 < changed <= 12  # the change took effect mid-run, from that step on
    assert set(m.loc[:changed - 1, "kl_coef"]) == {0.05} and set(m.loc[changed:, "kl_coef"]) == {0.5}
    latest = run.samples()
    assert len(latest) == 4 and set(latest["step"]) == {12}
    assert list(run.samples(1)["step"].unique()) == [1]


@pytest.mark.slow
def test_figures_for_a_notebook(finished):
    _, run = finished
    chart = plots.run_figure(run)
    spec = chart.to_dict()
    assert spec["title"]["text"].startswith(f"{run.id}: finished, step 12/12")
    assert len(spec["datasets"]["rows"]) == 12
    fig = rlhf_core.compare([run], "kl")
    assert len(fig.data) == 1 and list(fig.data[0].x) == list(range(1, 13))
    assert len(rlhf_core.frontier([run]).data) == 2  # the path and its last point


def test_bad_settings_fail_before_anything_starts(tmp_path):
    root = str(tmp_path / "runs")
    with pytest.raises(ConfigError, match="kl_coef must be ≥ 0.0, got -1"):
        rlhf_core.start("classic-grpo", root=root, kl_coef=-1)
    with pytest.raises(ConfigError, match="no preset named 'nope'"):
        rlhf_core.start("nope", root=root)
    with pytest.raises(ConfigError, match="config must be a preset name"):
        rlhf_core.start(42, root=root)
    assert runs.list_runs(root) == []
    with pytest.raises(runs.RunError, match="not found"):
        rlhf_core.open_run("20990101-000000-grpo-0000", root)
