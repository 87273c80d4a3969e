"""Regenerate the labs' evidence: every lab at its default settings on N seeds (5 by default).

    python scripts/lab_evidence.py                 # all labs, 5 seeds: docs/lab-evidence.json,
                                                   # docs/LABS.md and the README's lab table
    python scripts/lab_evidence.py --labs best_of_n stability   # refresh these labs' entries only

Each lab runs as a user runs it, `python -m rlhf_core lab NAME --seeds N --json`, imports included.
The JSON records the command, the git commit (and whether the tree had uncommitted changes) and the
machine for every lab entry. docs/LABS.md (every check, its source and why it can fail) and the
README's table (between the `lab-table` markers) are written from the JSON and the labs' CHECKS, so
none of these files is ever edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rlhf_core import labs  # noqa: E402
from rlhf_core.bench import fill_between, git_state, machine  # noqa: E402

EVIDENCE = os.path.join(ROOT, "docs", "lab-evidence.json")
LABS_MD = os.path.join(ROOT, "docs", "LABS.md")
README = os.path.join(ROOT, "README.md")
TABLE_START, TABLE_END = "<!-- lab-table:start (scripts/lab_evidence.py) -->", "<!-- lab-table:end -->"


def run_lab(name: str, seeds: int) -> dict:
    cmd = [sys.executable, "-m", "rlhf_core", "lab", name, "--seeds", str(seeds), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    entry = {"command": " ".join(["python", "-m", "rlhf_core", "lab", name, "--seeds", str(seeds), "--json"]),
             "wall_s": round(wall, 1), "exit_code": proc.returncode,
             "git": git_state(("docs/lab-evidence.json", "docs/LABS.md", "README.md")), "machine": machine(),
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if proc.returncode != 0:
        entry["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return entry
    result = json.loads(proc.stdout)
    verdict = labs.verdict(name, result)
    mod = labs.module(name)
    entry.update(state=verdict["state"], k=verdict["k"], n=verdict["n"], summary=verdict["summary"],
                 per_seed=[{"seed": r["config"]["seed"], "headline": mod.headline(r),
                            "problems": labs.shape_problems(name, r)} for r in labs.per_seed_results(result)])
    return entry


def verdict_cell(e: dict) -> str:
    if "state" not in e:
        return f"failed: {e.get('error', '?')}"
    if e["state"] == "illustration":
        return "illustration (no falsifiable check)"
    return f"**{e['state']}**, {e['k']}/{e['n']} seeds"


def readme_table(evidence: dict) -> str:
    rows = ["| Lab (takeaway) | What it tests | Verdict at defaults | Measured (seed 0) | Wall time, 5 seeds |",
            "|---|---|---|---|---|"]
    for name, info in labs.LABS.items():
        e = evidence["labs"].get(name)
        if not e:
            continue
        head = e["per_seed"][0]["headline"] if e.get("per_seed") else ""
        rows.append(f"| `{name}` ({info.takeaway}) | {info.title} | {verdict_cell(e)} | {head} | {e['wall_s']:.0f} s |")
    return "\n".join(rows)


def labs_md(evidence: dict) -> str:
    out = ["# The labs' checks",
           "",
           "Written by `python scripts/lab_evidence.py` from each lab's `CHECKS` and from",
           "[lab-evidence.json](lab-evidence.json); do not edit by hand.",
           "",
           "A lab's verdict is `reproduced` when every check below held on at least 80 % of the seeds run",
           "(k of n is always given), `not reproduced` otherwise (with what was seen), and `illustration`",
           "when the lab has no falsifiable check. Every check has a mutation test in `tests/labs/`: the",
           "lab's own noisy output with the effect removed, as the last column says, must fail it.",
           "",
           "The dashed lines on the lab pages are least-squares fits of the published functional forms",
           "(c·ε·T², c·ε·T, a + b·log n, d(α − β log d), d(α − βd), c·V) to the points measured here. No",
           "lab draws a published curve: Ross & Bagnell's results are bounds, and Gao et al.'s fitted",
           "coefficients belong to their reward-model sizes and KL scale, which do not transfer to a",
           "1.35M-parameter policy.",
           ""]
    for name, info in labs.LABS.items():
        mod = labs.module(name)
        e = evidence["labs"].get(name, {})
        out += [f"## `{name}` ({info.takeaway}): {info.title}", ""]
        if e:
            out += [f"Verdict at the default settings: {verdict_cell(e)} (`{e['command']}`, commit "
                    f"{e['git']['commit'][:10]}).", ""]
            for s in e.get("per_seed", []):
                out.append(f"- seed {s['seed']}: {s['headline']}" + (
                    "" if not s["problems"] else " — not shown: " + "; ".join(s["problems"])))
            out.append("")
        if not mod.CHECKS:
            out += [f"Illustration: {mod.ILLUSTRATION}.", ""]
            continue
        out += ["| check | claim | source | why it could fail (mutation test) |", "|---|---|---|---|"]
        out += [f"| `{c.name}` | {c.claim} | {c.source} | {c.can_fail} |" for c in mod.CHECKS]
        not_checks = getattr(mod, "NOT_CHECKS", [])
        if not_checks:
            out += ["", "Facts that hold by construction, so they are test assertions, not checks:"]
            out += [f"- {x}" for x in not_checks]
        out.append("")
    return "\n".join(out)


def write_readme_table(evidence: dict) -> None:
    with open(README) as f:
        text = f.read()
    with open(README, "w") as f:
        f.write(fill_between(text, TABLE_START, TABLE_END, readme_table(evidence)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labs", nargs="+", choices=list(labs.LABS), default=list(labs.LABS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--docs-only", action="store_true", help="rewrite LABS.md and the README table from the JSON")
    a = p.parse_args(argv)
    evidence = {"labs": {}}
    if os.path.exists(EVIDENCE):
        with open(EVIDENCE) as f:
            evidence = json.load(f)
    evidence["script"] = "python scripts/lab_evidence.py"
    if not a.docs_only:
        for name in a.labs:
            print(f"[lab evidence] {name}: {a.seeds} seeds ...", file=sys.stderr, flush=True)
            evidence["labs"][name] = run_lab(name, a.seeds)
            print(f"[lab evidence] {name}: {verdict_cell(evidence['labs'][name])} in "
                  f"{evidence['labs'][name]['wall_s']} s", file=sys.stderr, flush=True)
            with open(EVIDENCE, "w") as f:
                json.dump(evidence, f, indent=1)
    with open(LABS_MD, "w") as f:
        f.write(labs_md(evidence) + "\n")
    write_readme_table(evidence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
