"""A lab's verdict: three states, one function for the JSON, the CLI and the page.

- `reproduced`: the lab's falsifiable checks all held on at least 80 % of the seeds run
  (k of n is always reported: 1/1, 2/2, 3/3, 4/5, 5/5);
- `not reproduced`: fewer seeds passed; the verdict says what was seen on the seeds that failed;
- `illustration`: the lab has no falsifiable check (it shows a mechanism, it does not test a claim).

A lab states its published shape as `CHECKS`, a list of `Check`s. Each check names the claim, its
source and why it could fail on real data: the tests remove that effect from the lab's own noisy
output (shuffle, flatten, or swap in the judge) and expect the check to fail. Facts that hold by
construction (an estimator's monotonicity, advantages that sum to zero) are not checks: they stay
as plain test assertions. Verdicts are always recomputed from the stored raw series, never read
from a cache, so a result computed by older code is judged by today's checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

REPRODUCED, NOT_REPRODUCED, ILLUSTRATION = "reproduced", "not reproduced", "illustration"
PASS_SHARE = 0.8  # reproduced when the shape held on at least this share of the seeds


@dataclass(frozen=True)
class Check:
    """One falsifiable part of a lab's published shape. `test(result)` returns None when the shape
    holds, otherwise what was seen instead."""

    name: str
    claim: str
    source: str
    can_fail: str
    test: Callable[[dict], str | None]


def problems(checks: list[Check], result: dict) -> list[str]:
    """What the result does not show, one line per failed check (empty: every check held)."""
    out = []
    for check in checks:
        seen = check.test(result)
        if seen:
            out.append(f"{check.name}: {seen}")
    return out


def seeds_needed(n: int) -> int:
    return math.ceil(PASS_SHARE * n - 1e-9)


def judge(checks: list[Check], results: list[dict], illustration: str = "") -> dict:
    """The verdict over one result per seed: state, k of n, and each seed's problems."""
    n = len(results)
    seeds = [r.get("config", {}).get("seed") for r in results]
    if not checks:
        return {"state": ILLUSTRATION, "k": None, "n": n, "seeds": seeds, "per_seed": [],
                "summary": f"illustration: {illustration or 'no falsifiable check'}"}
    per_seed = [{"seed": s, "problems": problems(checks, r)} for s, r in zip(seeds, results)]
    k = sum(not p["problems"] for p in per_seed)
    state = REPRODUCED if n and k >= seeds_needed(n) else NOT_REPRODUCED
    if state == REPRODUCED:
        summary = f"reproduced on {k} of {n} seed{'s' if n != 1 else ''}"
    else:
        seen = "; ".join(f"seed {p['seed']}: " + "; ".join(p["problems"]) for p in per_seed if p["problems"])
        summary = f"not reproduced ({k} of {n} seed{'s' if n != 1 else ''} passed): {seen}"
    return {"state": state, "k": k, "n": n, "seeds": seeds, "per_seed": per_seed, "summary": summary}
