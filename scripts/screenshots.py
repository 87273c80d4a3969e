"""Regenerate the README's screenshots in a real browser: `python scripts/screenshots.py`.

Starts `streamlit run app.py` (with its warm worker) on a free local port, drives Debian's
Chromium through Playwright as a visitor would, and writes docs/screenshots/*.png plus
docs/screenshots/screenshots.json (command, commit, machine and what each image shows). The runs
are real, trained while the script waits, in a runs folder that starts empty: ./runs, which must
not exist yet (so the sidebar shows the default folder a new user sees), or --runs-dir DIR.

    playground-live.png          the classic preset training: live charts and samples
    playground-beta-marker.png   β raised from 0.05 to 0.5 at about step 10: the marker and KL bending
    compare.png                  Runs & Compare over those runs and a no-leash run: the overlay and frontier
    lab-compounding-error.png    the T2 lab, opening on its stored 5-seed result
    lesson-link.png              a teacher's lesson link: two knobs hidden, a note above Start
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rlhf_core.bench import git_state, machine  # noqa: E402
from rlhf_core.bench_browser import (CHROMIUM_ARGS, LIVE_CHART_JS, AppServer, chromium_path,  # noqa: E402
                                     wait_for_page)

OUT = os.path.join(ROOT, "docs", "screenshots")
VIEWPORT = {"width": 1440, "height": 1000}
LESSON = "/?preset=no-leash&hide=clip_range,learning_rate&note=Press+Start,+then+watch+KL+and+the+samples."


def chart_points(page) -> int:
    state = page.evaluate(LIVE_CHART_JS)
    return state["points"] if state else -1


def wait_until(page, read, predicate, timeout: float, what: str):
    try:
        return wait_for_page(page, read, predicate, timeout, what)
    except TimeoutError as e:
        raise SystemExit(str(e)) from None


def start_run(page, url: str, query: str) -> None:
    page.goto(url + query)
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**run=*", timeout=30_000)


def settle(page) -> None:
    """Let the last refresh paint, with the mouse out of the way (no hover tooltips in the image)."""
    page.mouse.move(5, VIEWPORT["height"] - 5)
    page.wait_for_timeout(1500)


def shoot(page, name: str, shown: dict, what: str) -> None:
    path = os.path.join(OUT, name)
    page.screenshot(path=path, full_page=False)
    shown[name] = what
    print(f"wrote {os.path.relpath(path, ROOT)}: {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", help="an empty or absent runs folder (default: ./runs, which must not exist)")
    args = parser.parse_args()
    runs_dir = os.path.abspath(args.runs_dir or os.path.join(ROOT, "runs"))
    if os.path.exists(runs_dir) and os.listdir(runs_dir):
        raise SystemExit(f"{runs_dir} already holds runs; the screenshots start from an empty runs folder "
                         "(move it away, or pass --runs-dir with a new folder)")
    if chromium_path() is None:
        raise SystemExit("no Chromium installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    os.makedirs(runs_dir, exist_ok=True)
    shown: dict[str, str] = {}
    try:
        with AppServer(runs_dir) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(server.url + "/")
            page.get_by_role("button", name="Start").wait_for(timeout=60_000)
            server.wait_warm()

            start_run(page, server.url, "/?preset=classic-grpo&steps=60")
            wait_until(page, chart_points, lambda n: n >= 30, 180, "30 steps of the classic preset")
            settle(page)
            shoot(page, "playground-live.png", shown, "the classic preset (GRPO, β = 0.05) at step 30 or so, live")
            wait_until(page, chart_points, lambda n: n >= 60, 180, "the classic run to finish")

            start_run(page, server.url, "/?preset=classic-grpo&steps=60")
            wait_until(page, chart_points, lambda n: n >= 10, 180, "10 steps of the second classic run")
            handle = page.locator('[data-testid="stSlider"]').filter(has_text="β (kl_coef)").get_by_role("slider")
            handle.focus()
            for _ in range(3):  # 0.05 -> 0.1 -> 0.2 -> 0.5
                handle.press("ArrowRight")
            page.get_by_role("button", name="Apply").click()
            wait_until(page, chart_points, lambda n: n >= 40, 180, "40 steps after the β change")
            settle(page)
            shoot(page, "playground-beta-marker.png", shown,
                  "the classic preset with β raised from 0.05 to 0.5 live near step 10")
            wait_until(page, chart_points, lambda n: n >= 60, 180, "the second classic run to finish")

            start_run(page, server.url, "/?preset=no-leash&steps=60")
            wait_until(page, chart_points, lambda n: n >= 60, 180, "the no-leash run to finish")

            page.goto(server.url + "/compare")
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
            page.get_by_text("Reward vs KL: the β frontier").scroll_into_view_if_needed()
            page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
            settle(page)
            shoot(page, "compare.png", shown, "Runs & Compare over the three runs above: reward overlay and frontier")

            page.goto(server.url + "/lab-compounding-error")
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
            page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
            settle(page)
            shoot(page, "lab-compounding-error.png", shown, "the T2 lab opening on its stored 5-seed result")

            page.goto(server.url + LESSON)
            page.get_by_role("button", name="Start").wait_for(timeout=60_000)
            page.get_by_text("Press Start, then watch KL").wait_for(timeout=30_000)
            settle(page)
            shoot(page, "lesson-link.png", shown, f"the lesson link {LESSON}")
            browser.close()
    finally:
        if not args.runs_dir:
            shutil.rmtree(runs_dir, ignore_errors=True)  # ./runs held only this script's runs
    record = {"command": "python scripts/screenshots.py", "git": git_state(outputs=("docs/screenshots",)),
              "machine": machine(), "viewport": VIEWPORT, "images": shown,
              "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with open(os.path.join(OUT, "screenshots.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
