"""Helpers every page uses: error guard, cached run data with incremental reads, run selection."""

from __future__ import annotations

import collections
import functools
import logging

import streamlit as st

from rlhf_core import runs
from rlhf_core.store import RunStore, StoreError

log = logging.getLogger("rlhf_explorer.ui")


def guarded(fn):
    """Run a page body; any unexpected error becomes a short st.error, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - st.rerun/st.stop raise BaseException and pass through
            log.exception("page error")
            st.error(f"Something went wrong: {type(e).__name__}: {e}. The details are in the server log.")

    return wrapper


# A session holds at most this many runs' data, and per run at most MAX_ROWS rows: the newest
# KEEP_RECENT at full resolution, older ones thinned (every second row, again each time the
# bound is reached). The charts draw at most 500 points; exports read the store, not this.
MAX_RUNS_PER_SESSION = 8
MAX_ROWS = 2000
KEEP_RECENT = 1000


class RunData:
    """One run's rows and events, read incrementally: each refresh fetches only rows newer than
    the last step already held (the live views call this twice a second). Bounded: see MAX_ROWS."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.rows: list[dict] = []
        self.events: list[dict] = []
        self._last_event_id = 0

    @property
    def last_step(self) -> int:
        return self.rows[-1]["step"] if self.rows else -1

    def refresh(self) -> int:
        """Read new rows and events; return how many rows arrived."""
        store = RunStore(runs.run_dir(self.run_id))
        new = store.metrics_since(self.last_step)
        self.rows.extend(new)
        while len(self.rows) > MAX_ROWS:
            old, recent = self.rows[:-KEEP_RECENT], self.rows[-KEEP_RECENT:]
            self.rows = old[::2] + recent
        new_events = store.events(self._last_event_id)
        if new_events:
            self.events.extend(new_events)
            self._last_event_id = new_events[-1]["id"]
        return len(new)


@st.cache_data(ttl=1.0, show_spinner=False)
def listed_runs(root: str) -> list[runs.RunInfo]:
    """runs.list_runs, shared by every session of this server for a second: a page polling a
    queue asks for it every two seconds, and a class is many pages polling at once."""
    return runs.list_runs(root)


def run_data(run_id: str) -> RunData:
    """The session's cached RunData for a run, refreshed; the least recently used run's data
    are dropped beyond MAX_RUNS_PER_SESSION."""
    cache = st.session_state.setdefault("_run_data", collections.OrderedDict())
    data = cache.pop(run_id, None) or RunData(run_id)
    cache[run_id] = data  # now the most recently used
    while len(cache) > MAX_RUNS_PER_SESSION:
        cache.popitem(last=False)
    data.refresh()
    return data


def forget_run(run_id: str) -> None:
    st.session_state.get("_run_data", {}).pop(run_id, None)


def selected_run_id() -> tuple[str | None, str | None]:
    """(run id, error message) from ?run=ID; the id is validated before any file is touched."""
    raw = st.query_params.get("run")
    if not raw:
        return None, None
    try:
        runs.validate_run_id(raw)
    except runs.RunError as e:
        return None, str(e)
    try:
        runs.info(raw, with_last=False)
    except runs.RunError as e:
        return None, f"{e}. It may have been deleted; pick another run in Runs & Compare."
    except StoreError as e:
        return None, f"run '{raw}' cannot be read: {e}"
    return raw, None


def fmt_duration(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def progress_line(info: runs.RunInfo, rows: list[dict]) -> tuple[float, str]:
    """(fraction done, 'step 12/60 · 3.1 steps/s · ETA 0:15')."""
    total = max(1, info.steps_total)
    done = info.steps_done
    text = f"{info.status} · step {done}/{info.steps_total}"
    recent = rows[-20:]
    if len(recent) >= 2:
        dt = recent[-1]["ts"] - recent[0]["ts"]
        if dt > 0:
            rate = (len(recent) - 1) / dt
            text += f" · {rate:.1f} steps/s"
            if info.status == "running":
                text += f" · ETA {fmt_duration((total - done) / rate)}"
    elif info.status in ("starting", "queued"):
        text += " · loading models…" if info.status == "starting" else " · waiting for a free slot"
    if info.duration is not None and info.status != "queued":
        text += f" · elapsed {fmt_duration(info.duration)}"
    return min(1.0, done / total), text
