"""SQLite run store: one database per run directory, in WAL mode.

The worker is the only writer and commits one transaction per step, so a reader (the UI, the
CLI) always sees whole steps, and a killed worker leaves every committed step readable.
Readers ask only for rows newer than the last step they drew (`metrics_since`).

Layout of a run directory (contract, see DESIGN.md):
    runs/<id>/run.sqlite    metrics, samples, status history, events, meta
    runs/<id>/config.yaml   the RunConfig
    runs/<id>/control.json  control messages from the UI (atomic replace)
    runs/<id>/worker.log    the worker's stdout/stderr
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from contextlib import closing, contextmanager
from typing import Any, Iterable

DB_NAME = "run.sqlite"
STATUSES = ("queued", "starting", "running", "finished", "stopped", "failed", "diverged", "crashed")
FINAL_STATUSES = ("finished", "stopped", "failed", "diverged", "crashed")
LIVE_STATUSES = ("starting", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS status (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
    status TEXT NOT NULL, message TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS metrics (step INTEGER PRIMARY KEY, ts REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (step INTEGER NOT NULL, idx INTEGER NOT NULL, prompt TEXT NOT NULL,
    completion TEXT NOT NULL, reward REAL, kl REAL, tokens TEXT, logratios TEXT,
    PRIMARY KEY (step, idx));
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER NOT NULL,
    ts REAL NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL);
"""


class StoreError(RuntimeError):
    """The run store is missing, unreadable or corrupt; the message names the file."""


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf; store them as strings so a diverged step is still recorded."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _from_json_value(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def db_path(run_dir: str) -> str:
    return os.path.join(run_dir, DB_NAME)


class RunStore:
    """Read and write access to one run's database. Connections are short-lived, so one
    RunStore object is safe to share between threads (the UI) and to keep across forks."""

    def __init__(self, run_dir: str, create: bool = False):
        self.run_dir = run_dir
        self.path = db_path(run_dir)
        if create:
            os.makedirs(run_dir, exist_ok=True)
            with self._connect() as conn:
                # WAL is a property of the database file: set once here, kept for every later connection
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        elif not os.path.isfile(self.path):
            raise StoreError(f"{self.path}: no run store here (not a run directory, or it was deleted)")

    # ---- connection --------------------------------------------------------------------------

    @contextmanager
    def _connect(self):
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open run store ({e})") from None
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: durable across a killed process
            yield conn
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: run store is unreadable or corrupt ({e})") from None
        finally:
            conn.close()

    @contextmanager
    def _transaction(self):
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---- writes (the worker) -----------------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in values.items()])

    def set_status(self, status: str, message: str | None = None, detail: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._transaction() as conn:
            conn.execute("INSERT INTO status(ts, status, message, detail) VALUES (?, ?, ?, ?)",
                         (time.time(), status, message, detail))

    def write_step(self, step: int, metrics: dict[str, Any], samples: Iterable[dict] = (),
                   events: Iterable[tuple[str, dict]] = ()) -> None:
        """One transaction per step: metrics, its samples and any events land together or not at all."""
        now = time.time()
        data = json.dumps({k: _json_safe(v) for k, v in metrics.items()})
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO metrics(step, ts, data) VALUES (?, ?, ?)", (step, now, data))
            conn.executemany(
                "INSERT OR REPLACE INTO samples(step, idx, prompt, completion, reward, kl, tokens, logratios) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(step, i, s["prompt"], s["completion"], _finite_or_none(s.get("reward")),
                  _finite_or_none(s.get("kl")),
                  json.dumps(s["tokens"]) if s.get("tokens") is not None else None,
                  json.dumps(s["logratios"]) if s.get("logratios") is not None else None)
                 for i, s in enumerate(samples)])
            conn.executemany("INSERT INTO events(step, ts, kind, data) VALUES (?, ?, ?, ?)",
                             [(step, now, kind, json.dumps(payload)) for kind, payload in events])

    def add_event(self, step: int, kind: str, payload: dict) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO events(step, ts, kind, data) VALUES (?, ?, ?, ?)",
                         (step, time.time(), kind, json.dumps(payload)))

    # ---- reads (UI, CLI) ---------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """meta, last status, step count and the last metric row, read in one connection
        (run listings call this for every run on every refresh)."""
        with self._connect() as conn:
            meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
            st = conn.execute("SELECT ts, status, message, detail FROM status ORDER BY id DESC LIMIT 1").fetchone()
            count = int(conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
            last = conn.execute("SELECT step, ts, data FROM metrics ORDER BY step DESC LIMIT 1").fetchone()
        row = {}
        if last:
            row = {k: _from_json_value(v) for k, v in json.loads(last[2]).items()}
            row["step"], row["ts"] = last[0], last[1]
        status = None if st is None else {"ts": st[0], "status": st[1], "message": st[2], "detail": st[3]}
        return {"meta": meta, "status": status, "steps": count, "last": row}

    def meta(self) -> dict[str, Any]:
        with self._connect() as conn:
            return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}

    def status_history(self) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT ts, status, message, detail FROM status ORDER BY id").fetchall()
        return [{"ts": ts, "status": s, "message": m, "detail": d} for ts, s, m, d in rows]

    def last_status(self) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT ts, status, message, detail FROM status ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else {"ts": row[0], "status": row[1], "message": row[2], "detail": row[3]}

    def metrics_since(self, after_step: int = -1) -> list[dict]:
        """Rows with step > after_step, oldest first; each is {"step", "ts", **metrics}."""
        with self._connect() as conn:
            rows = conn.execute("SELECT step, ts, data FROM metrics WHERE step > ? ORDER BY step",
                                (after_step,)).fetchall()
        out = []
        for step, ts, data in rows:
            row = {k: _from_json_value(v) for k, v in json.loads(data).items()}
            row["step"], row["ts"] = step, ts
            out.append(row)
        return out

    def last_step(self) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT MAX(step) FROM metrics").fetchone()
        return -1 if row[0] is None else int(row[0])

    def count_steps(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])

    def sample_steps(self) -> list[int]:
        with self._connect() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT step FROM samples ORDER BY step")]

    def samples(self, step: int | None = None) -> list[dict]:
        """Samples of one step (default: the latest step that has samples)."""
        with self._connect() as conn:
            if step is None:
                row = conn.execute("SELECT MAX(step) FROM samples").fetchone()
                if row[0] is None:
                    return []
                step = row[0]
            rows = conn.execute("SELECT step, idx, prompt, completion, reward, kl, tokens, logratios "
                                "FROM samples WHERE step = ? ORDER BY idx", (step,)).fetchall()
        return [{"step": s, "idx": i, "prompt": p, "completion": c, "reward": r, "kl": k,
                 "tokens": json.loads(t) if t else None, "logratios": json.loads(lr) if lr else None}
                for s, i, p, c, r, k, t, lr in rows]

    def events(self, after_id: int = 0) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT id, step, ts, kind, data FROM events WHERE id > ? ORDER BY id",
                                (after_id,)).fetchall()
        return [{"id": i, "step": s, "ts": ts, "kind": k, **json.loads(d)} for i, s, ts, k, d in rows]


def _finite_or_none(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def write_csv(rows: list[dict], f) -> None:
    """Metric rows as CSV: step and ts first, then every metric name seen in any row."""
    import csv

    columns = ["step", "ts"] + sorted({k for r in rows for k in r} - {"step", "ts"})
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)


def check_integrity(run_dir: str) -> str | None:
    """None when the store is fine, else a one-line problem description."""
    path = db_path(run_dir)
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as e:
        return f"{path}: {e}"
    return None if result == "ok" else f"{path}: {result}"
