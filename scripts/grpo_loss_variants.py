"""Measure the ready-made "GRPO's loss variants" sweep over several seeds: `python scripts/grpo_loss_variants.py`.

Each seed queues presets/sweeps/grpo-loss-variants.yaml (the classic preset with completions of
up to 96 tokens, once per loss_type / scale_rewards variant) through the notebook API, in a
scratch runs folder, and waits for every run. Per run it records the mean reward of the first 5
and last 10 steps, the KL and the mean completion length of the last 10 steps, the share of
completions that ran to the 96-token limit (TRL's completions/clipped_ratio, over the whole run)
and the median step time. It writes docs/grpo-loss-variants.json (command, commit and machine)
and the README block between `<!-- grpo-loss-variants:start -->` and `<!-- grpo-loss-variants:end -->`.
Nothing there is edited by hand, and no verdict is drawn: the table is what the variants did.
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

SWEEP = "grpo-loss-variants"
OUT = os.path.join(ROOT, "docs", f"{SWEEP}.json")
README = os.path.join(ROOT, "README.md")
START, END = f"<!-- {SWEEP}:start (scripts/grpo_loss_variants.py) -->", f"<!-- {SWEEP}:end -->"
MEASURES = ("reward_first5", "reward_last10", "kl_last10", "length_last10", "at_limit", "step_s")


def variant(config: dict) -> str:
    return f"{config['loss_type']}, rewards scaled by {config['scale_rewards']}"


def summarise(run) -> dict:
    m = run.metrics()
    info = run.info()

    def mean(column: str, rows) -> float | None:
        values = rows[column].dropna() if column in rows else []
        return round(float(values.mean()), 4) if len(values) else None

    return {"variant": variant(info.config), "status": info.status, "steps": len(m),
            "reward_first5": mean("reward", m.head(5)), "reward_last10": mean("reward", m.tail(10)),
            "kl_last10": mean("kl", m.tail(10)), "length_last10": mean("response_length", m.tail(10)),
            "at_limit": mean("trl/completions/clipped_ratio", m), "step_s": round(float(m["step_time"].median()), 3),
            "wall_s": round(info.duration or 0.0, 1)}


def block(record: dict) -> str:
    lines = ["| variant (loss_type, scale_rewards) | reward, first 5 steps | reward, last 10 | KL, last 10 (nats) | "
             "length, last 10 (tokens) | completions at the 96-token limit | step (median) |",
             "|---|---|---|---|---|---|---|"]
    for name, med in record["median"].items():
        lines.append(f"| {name} | {med['reward_first5']:+.3f} | {med['reward_last10']:+.3f} | {med['kl_last10']:.1f} | "
                     f"{med['length_last10']:.1f} | {med['at_limit']:.0%} | {med['step_s']:.2f} s |")
    m, g = record["machine"], record["git"]
    dirty = " (with uncommitted changes)" if g["uncommitted_changes"] else ""
    box = f"{m.get('cpu_model') or m['cpu']}, {m['cores']} cores" + ("" if m.get("gpu") else ", no GPU")
    lines += ["", f"Medians over {record['n']} seeds (each seed runs every variant from the same starting policy). "
              f"Measured by `{record['command']}` at commit `{g['commit'][:7]}`{dirty} on {box}."]
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
    record = {"command": f"python scripts/grpo_loss_variants.py --seeds {a.seeds}",
              "git": git_state((f"docs/{SWEEP}.json", "README.md")), "machine": machine(), "seeds": []}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(a.seeds):
            t0 = time.time()
            queued = rlhf_core.sweep(SWEEP, root=os.path.join(scratch, "runs"), seed=seed)
            for run in queued:
                run.wait()
            record["seeds"].append({"seed": seed, "runs": [summarise(r) for r in queued]})
            print(f"seed {seed}: {record['seeds'][-1]['runs']} ({time.time() - t0:.0f} s)", file=sys.stderr)
    failed = [r for s in record["seeds"] for r in s["runs"] if r["status"] != "finished"]
    if failed:
        raise SystemExit(f"{len(failed)} runs did not finish: {failed}")
    names = [r["variant"] for r in record["seeds"][0]["runs"]]
    record["n"] = len(record["seeds"])
    record["median"] = {name: {k: statistics.median(r[k] for s in record["seeds"] for r in s["runs"]
                                                     if r["variant"] == name) for k in MEASURES}
                        for name in names}
    with open(OUT, "w") as f:
        json.dump(record, f, indent=1)
    write_readme(record)
    return 0


def write_readme(record: dict) -> None:
    rewrite_between(README, START, END, block(record))


if __name__ == "__main__":
    sys.exit(main())
