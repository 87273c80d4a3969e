"""End to end in a real browser: Debian Chromium driven by Playwright against `streamlit run`.

Skips (with the reason) only where no Chromium is installed; .ci/run installs it, so CI runs these.
Screenshots land in test-artifacts/screenshots/, for looking into a failure; the README's images
come from scripts/screenshots.py.
"""

import os
import subprocess
import sys
import time

import pytest

from rlhf_core.bench_browser import LIVE_CHART_JS, wait_for_page
from tests.conftest import ROOT
from tests.e2e.support import browser, page, serve  # noqa: F401 - fixtures

LIVE_CHART = '[data-testid="stVegaLiteChart"]'
SHOTS = os.path.join(ROOT, "test-artifacts", "screenshots")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs_root = str(tmp_path_factory.mktemp("e2e-runs"))
    with serve(runs_root, RLHF_EXPLORER_WARM_POOL="1") as url:
        yield {"url": url, "runs_root": runs_root}


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name), full_page=False)


def live_points(page) -> int:
    """How many steps the Playground's live chart (a Vega view) is drawing; -1 before it exists."""
    state = page.evaluate(LIVE_CHART_JS)
    return state["points"] if state else -1


def live_marks(page) -> list[str]:
    """The labels of the chart's knob-change markers (for example 'β→0.2')."""
    state = page.evaluate(LIVE_CHART_JS)
    return state["marks"] if state else []


def wait_js(page, read, predicate, timeout=60.0):
    return wait_for_page(page, read, predicate, timeout)


def record_timing(name, seconds):
    import json

    os.makedirs(os.path.dirname(SHOTS), exist_ok=True)
    path = os.path.join(os.path.dirname(SHOTS), "e2e-timings.json")
    data = json.load(open(path)) if os.path.exists(path) else {}
    data[name] = round(seconds, 3)
    json.dump(data, open(path, "w"), indent=2)
    print(f"{name}: {seconds:.3f} s")


@pytest.mark.parametrize("width,height", [(1366, 768), (1440, 900)])
def test_first_screen_has_preset_and_start(server, browser, width, height):
    """On a laptop screen a newcomer sees the preset, its description and Start without scrolling,
    beside the panels a run will fill. The bound leaves ~110 px of the screen to browser chrome."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    pg = ctx.new_page()
    try:
        pg.goto(server["url"] + "/")
        start = pg.get_by_role("button", name="Start")
        start.wait_for(timeout=30_000)
        pg.locator(LIVE_CHART).first.wait_for(timeout=30_000)
        visible = height - 110
        for name, locator in (("Start", start),
                              ("Preset", pg.locator('[data-testid="stSelectbox"]').filter(has_text="Preset")),
                              ("panels", pg.locator(LIVE_CHART).first)):
            box = locator.bounding_box()
            assert box is not None and box["y"] < visible, (name, box)
        assert start.bounding_box()["y"] + start.bounding_box()["height"] <= visible
        assert pg.evaluate("() => window.scrollY") == 0
        shot(pg, f"first-screen-{width}x{height}.png")
    finally:
        ctx.close()


def test_playground_start_live_beta_stop_reload(server, page):
    page.goto(server["url"] + "/?steps=2000&preset=classic-grpo")
    pool = os.path.join(server["runs_root"], ".pool")
    page.get_by_role("button", name="Start").wait_for(timeout=30_000)
    deadline = time.time() + 90  # the page load started a warm worker; measure with it ready
    while time.time() < deadline and not any(n.endswith(".ready") for n in os.listdir(pool)):
        time.sleep(0.2)
    t_click = time.time()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**run=*", timeout=30_000)
    first = wait_js(page, live_points, lambda n: n >= 1, timeout=90)
    record_timing("start_click_to_first_point_s", time.time() - t_click)
    later = wait_js(page, live_points, lambda n: n >= first + 3, timeout=60)
    assert later > first  # the chart gains points live
    shot(page, "playground-live.png")

    # click latency while the run trains: a toggle's round trip to the server and back
    t0 = time.time()
    page.get_by_text("Pause live", exact=True).click()
    page.get_by_text("Paused at step").first.wait_for(timeout=10_000)
    record_timing("click_latency_while_training_s", time.time() - t0)
    page.get_by_text("Pause live", exact=True).click()
    page.get_by_text("Paused at step").first.wait_for(state="detached", timeout=10_000)

    # change beta live: move the live slider two notches right, then Apply
    live = page.locator('[data-testid="stSlider"]').filter(has_text="β (kl_coef)")
    handle = live.get_by_role("slider")
    handle.focus()
    handle.press("ArrowRight")
    handle.press("ArrowRight")
    page.get_by_role("button", name="Apply").click()
    marks = wait_js(page, live_marks, lambda a: any("β→" in t for t in a), timeout=30)
    assert any("β→0.2" in t for t in marks), marks
    shot(page, "playground-beta-marker.png")

    page.get_by_role("button", name="Stop").click()
    page.get_by_text("stopped · step").first.wait_for(timeout=20_000)
    url = page.url

    page.reload()
    page.get_by_text("stopped · step").first.wait_for(timeout=30_000)
    assert page.url == url
    assert wait_js(page, live_points, lambda n: n >= later, timeout=30) >= later
    shot(page, "playground-reloaded.png")


def test_bad_run_id_in_url(server, page):
    page.goto(server["url"] + "/?run=..%2F..%2Fetc")
    page.get_by_text("is not a valid run id").wait_for(timeout=30_000)


def test_compare_two_runs(server, page):
    # runs made headless through the CLI into the same runs folder, until there are two
    env = dict(os.environ, RLHF_EXPLORER_RUNS=server["runs_root"], HF_HUB_OFFLINE="1")
    while len([d for d in os.listdir(server["runs_root"]) if not d.startswith((".", "server"))]) < 2:
        r = subprocess.run([sys.executable, "-m", "rlhf_core", "train", "presets/tight-leash.yaml", "--set",
                            "steps=6", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    page.goto(server["url"] + "/compare")
    page.get_by_text("Runs to compare").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=30_000)
    counts = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(g => g._fullData.length)")
    assert counts[0] >= 2  # both runs overlaid
    shot(page, "compare.png")


def test_lab_runs_from_the_browser(server, page):
    """T2 lab end to end: Run lab starts the subprocess, the progress bar moves, the result draws
    with its reference curves, and a reload shows the cached result at once."""
    page.goto(server["url"] + "/lab-compounding-error")
    page.get_by_text("Lab T2 · Compounding error").first.wait_for(timeout=30_000)
    # a cold server's first page load can race the frontend's page list and flash Streamlit's
    # "Page not found" dialog even though the right page runs; close it if it shows
    page.wait_for_timeout(1000)
    if page.get_by_text("Page not found").count():
        page.keyboard.press("Escape")
    page.get_by_text("Stored result").first.wait_for(timeout=30_000)  # the committed evidence, before any run
    page.get_by_role("button", name="Run lab").click()
    page.get_by_role("button", name="Re-run").wait_for(timeout=180_000)  # this run's own result
    assert not page.get_by_text("Stored result").count()
    page.get_by_text("Published shape reproduced").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
    names = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(t => t.name)")
    assert any("T²" in n for n in names) and any("measured" in n for n in names), names
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    shot(page, "lab-compounding-error.png")
    page.reload()
    page.get_by_role("button", name="Re-run").wait_for(timeout=30_000)


LAB_PAGES = {"/lab-pipeline": ["pipeline", "offline_online"], "/lab-compounding-error": ["compounding_error"],
             "/lab-reward-proxy": ["rm_curve", "overoptimization", "best_of_n", "prompt_oirl"],
             "/lab-action-space": ["action_space", "credit"], "/lab-stability": ["stability"]}


def verdict_text(name: str) -> str:
    """The words the page shows for a lab's stored verdict (ui.labs.show_verdict)."""
    from rlhf_core import labs

    v = labs.verdict(name, labs.stored_result(name)["result"])
    if v["state"] == "reproduced":
        return f"Published shape reproduced on {v['k']} of {v['n']} seeds"
    if v["state"] == "not reproduced":
        return f"Published shape not reproduced: it held on {v['k']} of {v['n']} seeds"
    return "Illustration, not a test"


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """A server of its own, so that no lab run of another test stands in for the stored result."""
    runs_root = str(tmp_path_factory.mktemp("e2e-fresh-runs"))
    with serve(runs_root) as url:
        yield {"url": url, "runs_root": runs_root}


@pytest.mark.parametrize("path", sorted(LAB_PAGES))
def test_every_lab_view_opens_with_its_stored_verdict(fresh_server, page, path):
    """A class opens a lab page with a fresh runs folder and sees, in every tab, the committed
    5-seed result of its evidence settings: its verdict, its charts and the commit it came from."""
    from rlhf_core import labs

    assert sorted(n for names in LAB_PAGES.values() for n in names) == sorted(labs.LABS)
    page.goto(fresh_server["url"] + path)
    names = LAB_PAGES[path]
    # every tab's stored result is in the page (inactive tabs are hidden, not absent)
    wait_js(page, lambda pg: pg.get_by_text("Stored result").count(), lambda n: n == len(names), timeout=90)
    for name in names:
        stored = labs.stored_result(name)
        assert stored and not stored["stale"], f"{name}: no current stored result"
        same = sum(verdict_text(other) == verdict_text(name) for other in names)  # e.g. two labs at 5 of 5
        assert page.get_by_text(verdict_text(name)).count() == same, (name, verdict_text(name))
        assert page.get_by_text(stored["evidence"]["git"]["commit"][:10]).count() >= 1, name
    page.locator(".js-plotly-plot").first.wait_for(state="attached", timeout=60_000)  # its charts draw too
