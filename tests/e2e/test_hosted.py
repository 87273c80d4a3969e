"""Hosted mode in a real browser: two visitors (two browser contexts, so two localStorage tokens)
on one `RLHF_EXPLORER_HOSTED=1` server."""

import time

import pytest

from tests.e2e.support import browser, serve  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hosted(tmp_path_factory):
    runs_root = str(tmp_path_factory.mktemp("hosted-runs"))
    with serve(runs_root, RLHF_EXPLORER_HOSTED="1", RLHF_EXPLORER_WARM_POOL="0",
               RLHF_EXPLORER_RUNS_PER_VISITOR="1") as url:
        yield url


def visitor(browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    return ctx, ctx.new_page()


def start(page, url: str) -> str:
    """Press Start on the Playground (the visitor's browser must have reported its token first)."""
    page.goto(url + "/?steps=300&preset=classic-grpo")
    page.get_by_text("Shared server: you can stop").wait_for(timeout=30_000)
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**run=*", timeout=30_000)
    return page.url.split("run=")[1].split("&")[0]


def test_two_visitors_own_their_runs(hosted, browser):
    ctx_a, a = visitor(browser)
    ctx_b, b = visitor(browser)
    try:
        run_a = start(a, hosted)
        a.get_by_role("button", name="Stop").wait_for(timeout=30_000)

        # B's run queues behind A's, and B's page says where it stands
        run_b = start(b, hosted)
        assert run_b != run_a
        b.get_by_text("1st in line").first.wait_for(timeout=30_000)

        # B watches A's run: no Stop, no Apply, and why
        b.goto(f"{hosted}/?run={run_a}")
        b.get_by_text("You are watching a run another visitor started").wait_for(timeout=30_000)
        time.sleep(1.0)  # a few refreshes: the controls never appear
        assert b.get_by_role("button", name="Stop").count() == 0
        assert b.get_by_role("button", name="Apply").count() == 0

        # the file and hub inputs are absent: no free-text choice in the Policy or Reward lists
        for label in ("Policy", "Reward"):
            b.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
            options = b.get_by_role("option").all_inner_texts()
            assert options and "other…" not in options and not any(o.startswith("hub:") for o in options), options
            b.keyboard.press("Escape")

        # B controls his own run: he withdraws it from the queue
        b.goto(f"{hosted}/?run={run_b}")
        b.get_by_role("button", name="Stop").wait_for(timeout=30_000)
        b.get_by_role("button", name="Stop").click()
        b.get_by_text("stopped · step 0/300").first.wait_for(timeout=30_000)

        # A still controls hers after a reload (the token lives in the browser, not the session)
        a.reload()
        a.get_by_role("button", name="Stop").wait_for(timeout=30_000)
        a.get_by_role("button", name="Stop").click()
        a.get_by_text("stopped · step").first.wait_for(timeout=60_000)
    finally:
        ctx_a.close()
        ctx_b.close()
