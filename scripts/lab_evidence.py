"""Regenerate the labs' evidence: every lab at its evidence settings (`lab NAME --evidence`: its
defaults, or for a lab whose interactive defaults are lighter, its EVIDENCE) on N seeds (5 by default).

    python scripts/lab_evidence.py                 # all labs, 5 seeds: docs/lab-evidence.json,
                                                   # docs/LABS.md and the README's lab table
    python scripts/lab_evidence.py --labs best_of_n stability   # refresh these labs' entries only
    python scripts/lab_evidence.py --register stability         # record HEAD as the lab's registration

Each lab's raw 5-seed result goes to docs/lab-results/NAME.json with the entry's command, commit and
machine: the lab pages open with it, so a class sees the result without waiting.

A lab whose module defines `design(cfg)` (its arms, each with a role and an expected outcome, and the
range it reaches) is pre-registered: `--register LAB` records the commit at which its checks and
expectations were committed (docs/lab-registrations.json, committed next), and an evidence run of
it refuses to start unless that commit is an ancestor of HEAD. The entry's `design` block records
`registered_at` and which of the lab's files changed since, so a check changed after registration
is visible (docs/LABS.md then says so; both verdicts are reported in the closing note).

Each lab runs as a user runs it, `python -m rlhf_core lab NAME --evidence --seeds N --json`, imports
included.
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
from rlhf_core.bench import git_state, machine, rewrite_between  # noqa: E402

EVIDENCE = os.path.join(ROOT, "docs", "lab-evidence.json")
REGISTRATIONS = os.path.join(ROOT, "docs", "lab-registrations.json")
OUTPUTS = ("docs/lab-evidence.json", "docs/LABS.md", "README.md", "docs/lab-results/")
LABS_MD = os.path.join(ROOT, "docs", "LABS.md")
README = os.path.join(ROOT, "README.md")
TABLE_START, TABLE_END = "<!-- lab-table:start (scripts/lab_evidence.py) -->", "<!-- lab-table:end -->"


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def lab_files(name: str) -> list[str]:
    """What a lab's checks and design live in: its module and the shared verdict code."""
    return [f"rlhf_core/labs/{name}.py", "rlhf_core/labs/support/verdict.py"]


def registrations() -> dict:
    if not os.path.exists(REGISTRATIONS):
        return {}
    with open(REGISTRATIONS) as f:
        return json.load(f)


def register(names: list[str], why: str | None = None) -> None:
    """Record HEAD as the registration of each lab: its checks and expected outcomes are committed.
    Registering a lab again keeps the earlier registration, with the verdict its evidence gave and
    `why` the design changed, so LABS.md reports both verdicts."""
    dirty = git("status", "--porcelain", "--", *(f for n in names for f in lab_files(n))).stdout.strip()
    if dirty:
        raise SystemExit(f"commit the lab's checks before registering them; uncommitted:\n{dirty}")
    regs = registrations()
    head = git("rev-parse", "HEAD").stdout.strip()
    evidence = {"labs": {}}
    if os.path.exists(EVIDENCE):
        with open(EVIDENCE) as f:
            evidence = json.load(f)
    for name in names:
        if not hasattr(labs.module(name), "design"):
            raise SystemExit(f"lab '{name}' has no design(cfg): nothing to register")
        earlier = []
        if name in regs:
            if not why:
                raise SystemExit(f"lab '{name}' is registered already: say why its design changes (--why)")
            e = evidence["labs"].get(name, {})
            measured = e.get("design", {}).get("registered_at") == regs[name]["registered_at"]
            earlier = regs[name].get("earlier", []) + [{
                "registered_at": regs[name]["registered_at"], "why_changed": why,
                "evidence_at": e["git"]["commit"] if measured else None,
                "verdict": verdict_cell(e) if measured else "no evidence run",
                "per_seed_problems": [s["problems"] for s in e.get("per_seed", [])] if measured else []}]
        regs[name] = {"registered_at": head, "files": lab_files(name),
                      "committed_at": git("show", "-s", "--format=%cI", head).stdout.strip(), "earlier": earlier}
    with open(REGISTRATIONS, "w") as f:
        json.dump(regs, f, indent=1)
        f.write("\n")


def design_block(name: str) -> dict | None:
    """The lab's registered design, or None for a lab without one. Refuses an unregistered lab, and
    one whose registration is not an ancestor of HEAD (its evidence would predate its checks)."""
    mod = labs.module(name)
    if not hasattr(mod, "design"):
        return None
    reg = registrations().get(name)
    if not reg:
        raise SystemExit(f"lab '{name}' has a design but no registration: commit its checks, then run "
                         f"`python scripts/lab_evidence.py --register {name}` and commit docs/lab-registrations.json")
    if git("merge-base", "--is-ancestor", reg["registered_at"], "HEAD").returncode != 0:
        raise SystemExit(f"lab '{name}': its registration {reg['registered_at'][:10]} is not an ancestor of HEAD")
    changed = git("diff", "--name-only", reg["registered_at"], "HEAD", "--", *reg["files"]).stdout.split()
    return {**mod.design(labs.config(name, labs.evidence_settings(name))), "registered_at": reg["registered_at"],
            "changed_since_registration": changed}


def run_lab(name: str, seeds: int) -> dict:
    design = design_block(name)
    args = ["-m", "rlhf_core", "lab", name, "--evidence", "--seeds", str(seeds), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    entry = {"command": " ".join(["python", *args]),
             "wall_s": round(wall, 1), "exit_code": proc.returncode,
             "git": git_state(OUTPUTS), "machine": machine(),
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if design:
        entry["design"] = design
    if proc.returncode != 0:
        entry["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return entry
    result = json.loads(proc.stdout)
    verdict = labs.verdict(name, result)
    mod = labs.module(name)
    if design and hasattr(mod, "reached"):  # the range the run reached, beside the registered design
        entry["design"].update(mod.reached(labs.per_seed_results(result)))
    entry.update(state=verdict["state"], k=verdict["k"], n=verdict["n"], summary=verdict["summary"],
                 per_seed=[{"seed": r["config"]["seed"], "headline": mod.headline(r),
                            "problems": labs.shape_problems(name, r)} for r in labs.per_seed_results(result)])
    os.makedirs(labs.STORED_RESULTS, exist_ok=True)
    with open(labs.stored_result_path(name), "w") as f:  # the raw series the lab page opens with
        json.dump({"evidence": {k: entry[k] for k in ("command", "git", "machine", "measured_at", "wall_s")},
                   "result": result}, f, separators=(",", ":"))
    return entry


def verdict_cell(e: dict) -> str:
    if "state" not in e:
        return f"failed: {e.get('error', '?')}"
    if e["state"] == "illustration":
        return "illustration (no falsifiable check)"
    return f"**{e['state']}**, {e['k']}/{e['n']} seeds"


def box(machine: dict) -> str:
    """The box a wall time was measured on: CPU model and whether it has native bf16 (two kinds of
    AMD EPYC box differ by that, and in speed)."""
    return f"{machine.get('cpu_model') or machine.get('cpu', '?')}, {'' if machine.get('bf16_native') else 'no '}native bf16"


def readme_table(evidence: dict) -> str:
    rows = ["| Lab (takeaway) | What it tests | Verdict at the evidence settings | Measured (seed 0) | Wall time, 5 seeds |",
            "|---|---|---|---|---|"]
    for name, info in labs.LABS.items():
        e = evidence["labs"].get(name)
        if not e:
            continue
        head = e["per_seed"][0]["headline"] if e.get("per_seed") else ""
        rows.append(f"| `{name}` ({info.takeaway}) | {info.title} | {verdict_cell(e)} | {head} | {e['wall_s']:.0f} s "
                    f"({box(e['machine'])}) |")
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
            out += [f"Verdict at the evidence settings: {verdict_cell(e)} (`{e['command']}`, commit "
                    f"{e['git']['commit'][:10]}).", ""]
            lighter = labs.evidence_settings(name)
            if lighter:
                defaults = labs.config(name).model_dump()
                out += ["The evidence settings are heavier than the interactive defaults (one seed within a minute "
                        "on 2 cores; every kind of arm and every check): " + ", ".join(
                            f"`{k}` {json.dumps(v)} (default {json.dumps(defaults[k])})" for k, v in lighter.items())
                        + ".", ""]
            if e.get("design"):
                d = e["design"]
                out += [f"Registered design (checks and expectations committed at {d['registered_at'][:10]}, before "
                        f"this evidence run" + (f"; changed since: {', '.join(d['changed_since_registration'])}"
                                                if d["changed_since_registration"] else "; unchanged since") + "):", "",
                        "| arm | role | expected outcome |", "|---|---|---|"]
                out += [f"| `{arm['name']}` | {arm['role']} | {arm['expect']} |" for arm in d["arms"]]
                reach = {k: v for k, v in d.items() if k not in ("arms", "registered_at", "changed_since_registration")}
                out += ["", "Range reached: " + ", ".join(f"`{k}` = {v}" for k, v in reach.items()) + ".", ""]
                for old in registrations().get(name, {}).get("earlier", []):
                    out += [f"Earlier registration {old['registered_at'][:10]}: {old['verdict']}"
                            + (f" (evidence at {old['evidence_at'][:10]})" if old["evidence_at"] else "")
                            + f". Changed because: {old['why_changed']}", ""]
            for s in e.get("per_seed", []):
                out.append(f"- seed {s['seed']}: {s['headline']}" + (
                    "" if not s["problems"] else " — not shown: " + "; ".join(s["problems"])))
            out.append("")
        if not mod.CHECKS:
            out += [f"Illustration: {mod.ILLUSTRATION}.", ""]
            continue
        seeds = e.get("per_seed", [])

        def held(check: str) -> str:
            if not seeds:
                return "—"
            return f"{sum(not any(p.startswith(check + ':') for p in s['problems']) for s in seeds)}/{len(seeds)}"

        out += ["| check | held on seeds | claim | source | why it could fail (mutation test) |", "|---|---|---|---|---|"]
        out += [f"| `{c.name}` | {held(c.name)} | {c.claim} | {c.source} | {c.can_fail} |" for c in mod.CHECKS]
        not_checks = getattr(mod, "NOT_CHECKS", [])
        if not_checks:
            out += ["", "Facts that hold by construction, so they are test assertions, not checks:"]
            out += [f"- {x}" for x in not_checks]
        out.append("")
    return "\n".join(out)


def write_readme_table(evidence: dict) -> None:
    rewrite_between(README, TABLE_START, TABLE_END, readme_table(evidence))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labs", nargs="+", choices=list(labs.LABS), default=list(labs.LABS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--docs-only", action="store_true", help="rewrite LABS.md and the README table from the JSON")
    p.add_argument("--register", nargs="+", choices=list(labs.LABS), metavar="LAB",
                   help="record HEAD as these labs' registration (docs/lab-registrations.json) and exit")
    p.add_argument("--why", help="with --register, for a lab registered before: why its design changed")
    a = p.parse_args(argv)
    if a.register:
        register(a.register, a.why)
        return 0
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
