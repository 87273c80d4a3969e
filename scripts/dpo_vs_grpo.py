"""Measure the ready-made "DPO vs GRPO" sweep over several seeds: `python scripts/dpo_vs_grpo.py`.

Each seed queues presets/sweeps/dpo-vs-grpo.yaml through the notebook API (the app's own worker and
store, in a scratch runs folder) and waits for both runs. It records, per run, the mean reward and
KL of the first 5 and last 10 steps, the median step time and the wall time, and writes
docs/dpo-vs-grpo.json (command, commit and machine) and the README block between
`<!-- dpo-vs-grpo:start -->` and `<!-- dpo-vs-grpo:end -->`. Nothing there is edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import rlhf_core  # noqa: E402
from rlhf_core.bench import git_state, machine, rewrite_between  # noqa: E402

OUT = os.path.join(ROOT, "docs", "dpo-vs-grpo.json")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- dpo-vs-grpo:start (scripts/dpo_vs_grpo.py) -->", "<!-- dpo-vs-grpo:end -->"


def summarise(run) -> dict:
    m = run.metrics()
    info = run.info()

    def mean(col, rows):
        values = rows[col].dropna()
        return round(float(values.mean()), 4) if len(values) else None

    return {"algorithm": info.config["algorithm"], "status": info.status, "steps": len(m),
            "reward_first5": mean("reward", m.head(5)), "reward_last10": mean("reward", m.tail(10)),
            "kl_last10": mean("kl", m.tail(10)), "step_time_median_s": round(float(m["step_time"].median()), 3),
            "wall_s": round(info.duration or 0.0, 1)}


def block(record: dict) -> str:
    lines = ["| seed | algorithm | reward, first 5 steps | reward, last 10 | KL, last 10 (nats) | step (median) | run wall time |",
             "|---|---|---|---|---|---|---|"]
    for seed in record["seeds"]:
        for r in seed["runs"]:
            lines.append(f"| {seed['seed']} | {r['algorithm'].upper()} | {r['reward_first5']:+.3f} | "
                         f"{r['reward_last10']:+.3f} | {r['kl_last10']:.2f} | {r['step_time_median_s']:.2f} s | "
                         f"{r['wall_s']:.0f} s |")
    s = record["summary"]
    m, g = record["machine"], record["git"]
    dirty = " (with uncommitted changes)" if g["uncommitted_changes"] else ""
    lines += ["", f"GRPO ended with the higher reward on {s['grpo_higher_reward']} of {s['n']} seeds, and with the "
              f"higher reward gain per nat of KL (last 10 steps minus first 5, over the last 10 steps' KL) on {s['grpo_higher_reward_per_kl']} of {s['n']}. Measured by "
              f"`{record['command']}` at commit `{g['commit'][:7]}`{dirty} on {m['cores']} cores, no GPU."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--docs-only", action="store_true", help="rewrite the README block from the JSON")
    a = p.parse_args(argv)
    if a.docs_only:
        with open(OUT) as f:
            write_readme(json.load(f))
        return 0
    record = {"command": f"python scripts/dpo_vs_grpo.py --seeds {a.seeds}", "git": git_state(
        ("docs/dpo-vs-grpo.json", "README.md")), "machine": machine(), "seeds": []}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(a.seeds):
            t0 = time.time()
            pair = rlhf_core.sweep("dpo-vs-grpo", root=os.path.join(scratch, "runs"), seed=seed)
            for run in pair:
                run.wait()
            record["seeds"].append({"seed": seed, "runs": [summarise(r) for r in pair]})
            print(f"seed {seed}: {record['seeds'][-1]['runs']} ({time.time() - t0:.0f} s)", file=sys.stderr)
    by = [{r["algorithm"]: r for r in s["runs"]} for s in record["seeds"]]
    record["summary"] = {
        "n": len(by),
        "grpo_higher_reward": sum(x["grpo"]["reward_last10"] > x["dpo"]["reward_last10"] for x in by),
        "grpo_higher_reward_per_kl": sum(
            (x["grpo"]["reward_last10"] - x["grpo"]["reward_first5"]) / max(x["grpo"]["kl_last10"], 1e-6) >
            (x["dpo"]["reward_last10"] - x["dpo"]["reward_first5"]) / max(x["dpo"]["kl_last10"], 1e-6) for x in by),
        "median": {alg: {k: statistics.median(x[alg][k] for x in by) for k in ("reward_last10", "kl_last10")}
                   for alg in ("dpo", "grpo")},
    }
    with open(OUT, "w") as f:
        json.dump(record, f, indent=1)
    write_readme(record)
    return 0


def write_readme(record: dict) -> None:
    rewrite_between(README, START, END, block(record))


if __name__ == "__main__":
    sys.exit(main())
