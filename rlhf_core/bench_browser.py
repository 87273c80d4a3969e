"""Browser benchmarks: `python -m rlhf_core bench --browser [--json]`.

What a person feels, measured in Debian's Chromium (driven by Playwright) against a real
`streamlit run app.py` with its warm worker, on a 1366x768 screen, while a default run trains:

    click_latency_p95_ms        p95 of click (or key press) -> its visible response, over
                                Apply β (a toast), Stop (a toast), switching the sample step
                                (the samples caption names the new step) and opening another page
                                (its title) and back
    browser_step_to_pixels_ms   {p50, p95}: a step committed to the store (its row's timestamp)
                                -> the Playground chart drawing it
    click_to_first_point_s      Start click -> the chart's first point (a warm worker was ready)
    server_peak_rss_mb          peak of (server RSS + its idle warm worker's RSS) while Chromium
                                visits every page

`bench --classroom [--visitors N]` is a class arriving at a hosted server (RLHF_EXPLORER_HOSTED=1):
N browser contexts (N visitors) each start the default preset at 30 steps within a second, and
wait for their run to finish. It reports the wall time from the first Start to the last run
finished, each visitor's wait (Start -> their run's first step) and run time, how stale each
page was when its run finished (run ended -> the page says so), the server's peak RSS, and every
exception (page errors, tracebacks in the server log, runs that did not finish).

Both ends of every interval are read on one clock: the click is the DOM event's own timestamp and
the response is the first animation frame after the change is in the page (so it has been
painted), both in the page; the worker stamps a step with the same wall clock. Playwright's own
round trips are not counted.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}

# The Playground's live chart is a Vega view that Streamlit keeps in a React ref; this finds it from
# the chart's DOM node (walking up React's fiber tree) and reads what it is drawing: its "rows" and
# "events" datasets, and its description, which names the run. Used by these benchmarks and by
# the browser tests.
LIVE_CHART_JS = """() => {
  const viewOf = el => {
    const key = Object.keys(el).find(k => k.startsWith('__reactFiber'));
    for (let f = key && el[key], depth = 0; f && depth < 20; f = f.return, depth++) {
      for (let h = f.memoizedState, i = 0; h && typeof h === 'object' && i < 60; h = h.next, i++) {
        const v = h.memoizedState && h.memoizedState.current;
        if (v && typeof v.runAsync === 'function' && typeof v.data === 'function') return v;
      }
    }
    return null;
  };
  for (const el of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const view = viewOf(el);
    let rows, events;
    try { rows = view.data('rows'); events = view.data('events'); } catch (e) { continue; }
    return {points: rows.length, last: rows.length ? rows[rows.length - 1].step : null,
            marks: events.map(e => e.label), label: view.description ? view.description() : null};
  }
  return null;
}"""
# In-page probes. Timestamps are epoch milliseconds (performance.timeOrigin + DOMHighResTimeStamp).
PROBE_JS = """() => {
  if (window.__bench) return;
  const b = window.__bench = {inputs: [], chart: [], pending: null, last: null};
  const stamp = e => b.inputs.push(performance.timeOrigin + e.timeStamp);
  document.addEventListener('pointerdown', stamp, true);
  document.addEventListener('keydown', stamp, true);
  const liveChart = LIVE_CHART;
  const run = () => new URLSearchParams(location.search).get('run');
  function tick(now) {
    const t = performance.timeOrigin + now;
    // a change seen in the previous frame has been painted by now
    if (b.pending !== null) { b.chart.push([b.pending[0], b.pending[1], t]); b.pending = null; }
    const state = liveChart();
    // only the chart of the run in the address bar (not the previous page's chart, still shown)
    const step = state && state.label && state.label.endsWith('run ' + run()) ? state.last : null;
    const key = run() + ':' + step;
    if (step !== null && run() && key !== b.last) { b.last = key; b.pending = [run(), step]; }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
}""".replace("LIVE_CHART", LIVE_CHART_JS)
# resolves with the epoch ms of the first frame at which `cond` holds (it has been painted then)
PAINTED_JS = """([cond, arg]) => new Promise(resolve => {
  const f = new Function('arg', 'return (' + cond + ')(arg)');
  const tick = now => f(arg) ? resolve(performance.timeOrigin + now) : requestAnimationFrame(tick);
  requestAnimationFrame(tick);
})"""
LAST_INPUT_JS = "() => window.__bench.inputs[window.__bench.inputs.length - 1]"
TOASTS = "arg => [...document.querySelectorAll('[data-testid=\"stToast\"]')].filter(t => t.textContent.includes(arg)).length"
TEXT_SHOWN = "arg => [...document.querySelectorAll(arg[0])].some(e => e.textContent.includes(arg[1]))"


def chromium_path() -> str | None:
    path = os.environ.get("RLHF_EXPLORER_CHROMIUM", "/usr/bin/chromium")
    return path if os.path.exists(path) else shutil.which("chromium")


def unavailable() -> str | None:
    """Why the browser benchmarks cannot run here, or None."""
    if chromium_path() is None:
        return "no Chromium installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "playwright":
            return "Playwright is not installed (pip install -r requirements-dev.txt)"
        raise  # a missing dependency of Playwright is a real error, not "not installed"
    return None


def wait_for_page(page, read, predicate, timeout: float = 60.0, what: str = "the page"):
    """Poll `read(page)` every 0.3 s until `predicate` holds; return that value, or raise
    TimeoutError naming `what` and the last value read."""
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = read(page)
        if predicate(value):
            return value
        page.wait_for_timeout(300)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last value {value!r}")


def _rss_mb(pid: int) -> float:
    from .bench import status_mb

    return status_mb(pid, "VmRSS") or 0.0


class AppServer:
    """`streamlit run app.py` on a free local port with its own runs folder and the warm pool on,
    as a user starts it. While it runs, a thread samples the RSS of the server plus its idle warm
    workers (those booting or waiting in the pool, not one that is training a run)."""

    def __init__(self, runs_root: str, **env):
        self.runs_root = runs_root
        self.env = dict(os.environ, RLHF_EXPLORER_RUNS=runs_root, HF_HUB_OFFLINE="1", PYTHONPATH=_ROOT,
                        HF_HUB_DISABLE_TELEMETRY="1", RLHF_EXPLORER_WARM_POOL="1", **env)
        self.peak_rss_mb = 0.0
        self.server_peak_rss_mb = 0.0  # the streamlit process alone
        self._stop = threading.Event()

    def __enter__(self) -> "AppServer":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(os.path.join(self.runs_root, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError("streamlit did not become healthy in 90 s") from None
                time.sleep(0.2)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def idle_warm_pids(self) -> list[int]:
        from . import pool

        folder = pool.pool_dir(self.runs_root)
        return [pid for suffix in (".booting", ".ready") for pid in pool._pids(folder, suffix)]

    def warm_ready(self) -> bool:
        from . import pool

        return any(pool.alive(p) for p in pool._pids(pool.pool_dir(self.runs_root), ".ready"))

    def wait_warm(self, timeout: float = 120) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.warm_ready():
                return True
            time.sleep(0.1)
        return False

    def _sample(self) -> None:
        while not self._stop.is_set():
            server = _rss_mb(self.proc.pid)
            total = server + sum(_rss_mb(p) for p in self.idle_warm_pids())
            self.peak_rss_mb = max(self.peak_rss_mb, total)
            self.server_peak_rss_mb = max(self.server_peak_rss_mb, server)
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        from . import pool

        for pid in pool._pids(pool.pool_dir(self.runs_root), ""):  # the server's warm workers
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        self._log.close()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": _percentile(values, 50), "p95": _percentile(values, 95),
            "max": max(values) if values else None}


class _Session:
    """One browser tab with the probes installed, and timed interactions."""

    def __init__(self, page, url: str):
        self.page, self.url = page, url

    def goto(self, path: str) -> None:
        self.page.goto(self.url + path)
        self.page.evaluate(PROBE_JS)

    def timed(self, act, cond: str, arg, timeout_ms: float = 20_000) -> float:
        """Milliseconds from the input event `act` causes to the first painted frame where `cond`."""
        n_before = self.page.evaluate("() => window.__bench.inputs.length")
        act()
        seen = self.page.evaluate(f"([a, t]) => Promise.race([({PAINTED_JS})(a), "
                                  "new Promise(r => setTimeout(() => r(null), t))])", [[cond, arg], timeout_ms])
        if seen is None:
            raise TimeoutError(f"no visible response within {timeout_ms / 1000:g} s ({cond} {arg!r})")
        inputs = self.page.evaluate("() => window.__bench.inputs")
        if len(inputs) <= n_before:
            raise RuntimeError("the input event was not seen by the page")
        return seen - inputs[n_before]

    def no_toasts(self) -> None:
        """Wait until earlier toasts have gone, so that a new one is unambiguous."""
        self.page.wait_for_function(f"() => ({TOASTS})('') === 0", timeout=15_000)


def _apply_beta(s: _Session, direction: str) -> float:
    handle = s.page.locator('[data-testid="stSlider"]').filter(has_text="β (kl_coef)").get_by_role("slider")
    handle.focus()
    handle.press(direction)  # a key press, not timed: the Apply click is
    s.no_toasts()
    return s.timed(lambda: s.page.get_by_role("button", name="Apply").click(), f"arg => ({TOASTS})(arg) > 0", "β →")


def _switch_sample_step(s: _Session) -> float:
    slider = s.page.locator('[data-testid="stSlider"]').filter(has_text="Step").get_by_role("slider")
    current = int(slider.get_attribute("aria-valuenow") or slider.get_attribute("aria-valuetext") or 0)

    def act():
        slider.focus()
        slider.press("ArrowLeft")

    # the caption names the step shown; wait for one other than the current
    cond = ("arg => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')].some(e => "
            "/Samples from step (\\d+)/.test(e.textContent) && "
            "e.textContent.match(/Samples from step (\\d+)/)[1] !== String(arg))")
    return s.timed(act, cond, current)


def _open_page(s: _Session, link: str, title: str) -> float:
    return s.timed(lambda: s.page.get_by_role("link", name=link).first.click(),
                   "arg => [...document.querySelectorAll('h1')].some(e => e.textContent.trim() === arg)", title)


def _stop(s: _Session) -> float:
    s.no_toasts()
    return s.timed(lambda: s.page.get_by_role("button", name="Stop").click(), f"arg => ({TOASTS})(arg) > 0",
                   "Stopping")


def responsiveness(rounds: int = 3, clicks_per_kind: int = 4, steps: int = 400) -> dict:
    """`rounds` times: Start the default preset (with a warm worker ready), then while it trains,
    Apply β, switch the sample step and open Runs & Compare and come back, `clicks_per_kind` times
    each, then Stop. Every step the chart draws before the first page switch is timed against its
    commit."""
    from playwright.sync_api import sync_playwright

    from .store import RunStore

    latencies: dict[str, list[float]] = {"apply_beta": [], "stop": [], "sample_step": [], "open_page": []}
    first_points, pixels, errors = [], [], []
    with tempfile.TemporaryDirectory(prefix="rlhf-browser-") as root, AppServer(root) as server, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        s = _Session(page, server.url)
        for _ in range(rounds):
            try:
                s.goto(f"/?preset=classic-grpo&steps={steps}")
                page.get_by_role("button", name="Start").wait_for(timeout=60_000)
                if not server.wait_warm():
                    errors.append("no warm worker became ready in 120 s")
                t_start = s.timed(lambda: page.get_by_role("button", name="Start").click(),
                                  "() => window.__bench.chart.length > 0", None, timeout_ms=60_000)
                first_points.append(t_start / 1000)
                run_id = page.evaluate("() => new URLSearchParams(location.search).get('run')")
                page.get_by_text("Follow the latest step").wait_for(timeout=20_000)
                for i in range(clicks_per_kind):
                    latencies["apply_beta"].append(_apply_beta(s, "ArrowRight" if i % 2 == 0 else "ArrowLeft"))
                    page.wait_for_timeout(500)
                page.get_by_text("Follow the latest step").click()  # unfollow: the step slider appears
                page.locator('[data-testid="stSlider"]').filter(has_text="Step").wait_for(timeout=10_000)
                for _ in range(clicks_per_kind):
                    latencies["sample_step"].append(_switch_sample_step(s))
                    page.wait_for_timeout(500)
                # the chart's frames so far: once the page is left, the steps stored meanwhile are
                # drawn on return, which times the trip away, not a refresh
                chart = page.evaluate("() => window.__bench.chart")
                for _ in range(clicks_per_kind // 2):  # while the run trains, as every other click
                    latencies["open_page"].append(_open_page(s, "Runs & Compare", "Runs & Compare"))
                    page.wait_for_timeout(500)
                    latencies["open_page"].append(_open_page(s, "Playground", "Playground"))
                    page.wait_for_timeout(500)
                page.get_by_role("button", name="Stop").wait_for(timeout=10_000)
                latencies["stop"].append(_stop(s))
                rows = {r["step"]: r["ts"] for r in RunStore(os.path.join(root, run_id)).metrics_since(-1)}
                pixels.extend(_step_to_pixels(chart, run_id, rows))
            except Exception as e:  # noqa: BLE001 - report what failed, keep what was measured
                errors.append(f"{type(e).__name__}: {str(e)[:300]}")
                if os.environ.get("RLHF_EXPLORER_BENCH_SHOTS"):
                    page.screenshot(path=os.path.join(os.environ["RLHF_EXPLORER_BENCH_SHOTS"],
                                                      f"error-{len(errors)}.png"), full_page=True)
        browser.close()
    every = [v for vs in latencies.values() for v in vs]
    return {"click_latency_ms": {k: _summary(v) for k, v in latencies.items()} | {"all": _summary(every)},
            "step_to_pixels_ms": _summary(pixels), "click_to_first_point_s": _summary(first_points),
            "errors": errors, "viewport": VIEWPORT, "rounds": rounds}


def _step_to_pixels(chart: list, run_id: str, committed: dict[int, float]) -> list[float]:
    """For every committed step, the first painted frame whose chart reaches it, minus its commit
    time (a step committed between two refreshes appears with the later one)."""
    frames = sorted((t, step) for run, step, t in chart if run == run_id)
    out = []
    for step, ts in committed.items():
        shown = next((t for t, s in frames if s >= step and t >= ts * 1000), None)
        if shown is not None:
            out.append(shown - ts * 1000)
    return out


def server_memory(pages: list[str] | None = None) -> dict:
    """Peak RSS of the server plus its idle warm worker while Chromium opens every page (labs
    included) and the warm worker is ready."""
    from playwright.sync_api import sync_playwright

    paths = pages or ["/", "/compare", "/lab-pipeline", "/lab-compounding-error", "/lab-reward-proxy",
                      "/lab-action-space", "/lab-stability", "/about", "/"]
    with tempfile.TemporaryDirectory(prefix="rlhf-browser-mem-") as root, AppServer(root) as server, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        for path in paths:
            page.goto(server.url + path)
            page.locator("h1").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
        warm = server.wait_warm()
        time.sleep(1.0)
        browser.close()
        return {"peak_rss_mb": server.peak_rss_mb, "pages": paths, "warm_worker_ready": warm}


CLASSROOM_STEPS = 30


def classroom(visitors: int = 5, steps: int = CLASSROOM_STEPS, timeout_s: float = 600) -> dict:
    """A class on a hosted server (see the module docstring). Each visitor's run is read from its
    store: created (the Start click reached the server), the first step's commit, and its end."""
    from playwright.sync_api import sync_playwright

    from .store import RunStore

    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rlhf-classroom-") as root, \
            AppServer(root, RLHF_EXPLORER_HOSTED="1", RLHF_EXPLORER_RUNS_PER_VISITOR="1") as server, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        pages = []
        for i in range(visitors):
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.on("pageerror", lambda e, i=i: errors.append(f"visitor {i}: page error: {str(e)[:200]}"))
            page.goto(f"{server.url}/?preset=classic-grpo&steps={steps}")
            page.get_by_text("Shared server: you can stop").wait_for(timeout=120_000)
            pages.append(page)
        server.wait_warm()  # as a class would find it: the server has been up for a while
        t0 = time.time()
        run_ids = []
        for i, page in enumerate(pages):
            page.get_by_role("button", name="Start").click()
        for i, page in enumerate(pages):
            try:
                page.wait_for_url("**run=*", timeout=60_000)
                run_ids.append(page.evaluate("() => new URLSearchParams(location.search).get('run')"))
            except Exception as e:  # noqa: BLE001
                errors.append(f"visitor {i}: no run started: {type(e).__name__}: {str(e)[:200]}")
                run_ids.append(None)
        seen_finished: dict[int, float] = {}
        deadline = time.time() + timeout_s
        while len(seen_finished) < sum(r is not None for r in run_ids) and time.time() < deadline:
            for i, page in enumerate(pages):
                if run_ids[i] is None or i in seen_finished:
                    continue
                text = page.locator('[data-testid="stProgress"]').first.inner_text(timeout=5_000) \
                    if page.locator('[data-testid="stProgress"]').count() else ""
                if "finished" in text or "failed" in text or "crashed" in text:
                    seen_finished[i] = time.time()
                if page.get_by_text("Something went wrong").count():
                    errors.append(f"visitor {i}: the page shows an error")
            time.sleep(0.25)
        wall = max(seen_finished.values(), default=time.time()) - t0
        per_visitor = []
        for i, run_id in enumerate(run_ids):
            if run_id is None:
                continue
            store = RunStore(os.path.join(root, run_id))
            meta, rows = store.meta(), store.metrics_since(-1)
            status = store.last_status()["status"]
            if status != "finished" or len(rows) != steps:
                errors.append(f"visitor {i}: run {run_id} ended {status} with {len(rows)}/{steps} steps")
            ended = meta.get("ended")
            per_visitor.append({
                "visitor": i, "run": run_id, "warm_worker": meta.get("warm"),
                "wait_s": round(rows[0]["ts"] - t0, 2) if rows else None,
                "run_s": round(ended - rows[0]["ts"], 2) if rows and ended else None,
                "page_stale_s": round(seen_finished[i] - ended, 2) if i in seen_finished and ended else None})
        browser.close()
        with open(os.path.join(root, "server.log"), errors="replace") as f:
            tracebacks = f.read().count("Traceback (most recent call last)")
        if tracebacks:
            errors.append(f"the server log holds {tracebacks} traceback(s)")
        return {"visitors": visitors, "steps": steps, "wall_s": round(wall, 1), "per_visitor": per_visitor,
                "server_peak_rss_mb": round(server.server_peak_rss_mb, 1),
                "server_and_idle_warm_peak_rss_mb": round(server.peak_rss_mb, 1),
                "exceptions": errors}
