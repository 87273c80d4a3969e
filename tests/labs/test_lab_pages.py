"""Every lab page renders through the app's navigation, offers its settings and a Run button, and
draws a cached result (a real --quick result stored under the default settings' cache key)."""

import os

import pytest
from streamlit.testing.v1 import AppTest

from rlhf_core import labs
from rlhf_core.labs import cache_path
from rlhf_core.labs.support.common import write_json_atomic

from ..conftest import ROOT

PAGES = {
    "pages/lab_t1.py": ["pipeline", "offline_online"],
    "pages/lab_t2.py": ["compounding_error"],
    "pages/lab_t3.py": ["rm_curve", "overoptimization", "best_of_n", "prompt_oirl"],
    "pages/lab_t4.py": ["action_space", "credit"],
    "pages/lab_t5.py": ["stability"],
}


@pytest.fixture
def app(runs_root, monkeypatch):
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60)


def _no_exceptions(at):
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_lab_page_renders_without_a_result(app, page):
    app.run()
    app.switch_page(page).run()
    _no_exceptions(app)
    assert not app.error, [e.value for e in app.error]
    for name in PAGES[page]:
        assert app.button(key=f"run-{name}").label == "Run lab"
    assert app.latex, "every lab shows its formula"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_lab_page_draws_a_cached_result(app, page, runs_root, quick_result):
    for name in PAGES[page]:
        write_json_atomic(cache_path(runs_root, name, labs.config(name)), dict(quick_result(name)))
    app.run()
    app.switch_page(page).run()
    _no_exceptions(app)
    assert not app.error, [e.value for e in app.error]
    states = [labs.verdict(name, quick_result(name))["state"] for name in PAGES[page]]
    # green only for a reproduced shape; an illustration is information; not reproduced is a warning
    assert len(app.success) == states.count("reproduced")
    assert len(app.warning) == states.count("not reproduced")
    for name in PAGES[page]:
        assert app.button(key=f"run-{name}").label == "Re-run"


def test_lab_page_shows_k_of_n_for_a_cached_multi_seed_result(app, runs_root, quick_seeds):
    result = quick_seeds("compounding_error")
    write_json_atomic(cache_path(runs_root, "compounding_error", labs.config("compounding_error"), seeds=3), result)
    app.run()
    app.switch_page("pages/lab_t2.py").run()
    app.selectbox(key="seeds-compounding_error").set_value(3).run()
    _no_exceptions(app)
    v = labs.verdict("compounding_error", result)
    shown = " ".join(x.value for x in [*app.success, *app.warning])
    assert f"{v['k']} of {v['n']}" in shown
    assert sum(f"seed {s}" in c.value for c in app.caption for s in v["seeds"]) >= 2


def test_bad_list_setting_is_reported_by_name(app):
    app.run()
    app.switch_page("pages/lab_t3.py").run()
    app.text_input(key="lab-rm_curve-labels").set_value("16, lots").run()
    _no_exceptions(app)
    assert any("labels" in e.value for e in app.error)


def test_evidence_toggle_loads_the_stored_results_settings(app):
    """The form starts at the light interactive defaults, with the stored 5-seed result shown and
    said to be at other settings; the toggle loads those settings (the `--evidence` command) and the
    stored result stays, now as the result of the settings shown. Off again, the defaults return."""
    name, hint = "best_of_n", "switch on **Evidence settings**"
    heavier = labs.evidence_settings(name)

    def captions() -> str:
        return " ".join(c.value for c in app.caption)

    app.run()
    app.switch_page("pages/lab_t3.py").run()
    assert app.number_input(key=f"lab-{name}-labels").value == labs.config(name).labels
    hints = captions().count(hint)  # one per lab of the page with lighter defaults and a stored result
    assert hints >= 1 and f"lab {name} --json` `--evidence`" not in captions()
    app.toggle(key=f"evidence-{name}").set_value(True).run()
    _no_exceptions(app)
    assert app.number_input(key=f"lab-{name}-evidence-labels").value == heavier["labels"]
    assert f"lab {name} --json` `--evidence`" in captions() and captions().count(hint) == hints - 1
    assert captions().count("**Stored result**") == len(PAGES["pages/lab_t3.py"])
    assert app.button(key=f"run-{name}").label == "Run lab"
    app.toggle(key=f"evidence-{name}").set_value(False).run()
    assert app.number_input(key=f"lab-{name}-labels").value == labs.config(name).labels
