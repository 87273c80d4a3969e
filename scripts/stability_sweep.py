"""The T5 stability lab over several replicates: every figure quoted about it comes from here.

    python scripts/stability_sweep.py                      # defaults, 5 replicates (disjoint seeds)
    python scripts/stability_sweep.py --seeds 3 --quick    # the tests' settings
    python scripts/stability_sweep.py --set 'learning_rates=[0.001,0.002,0.005,0.01,0.02,0.03]' --set seeds=2
    python scripts/stability_sweep.py --out docs/stability-sweep.json

It runs the lab as a user does (`python -m rlhf_core lab stability --seeds N --json [--set ...]`,
imports included; replicate i uses seeds cfg.seed + i * cfg.seeds, so replicates never share one)
and prints one JSON object: the command, the git commit (and whether the tree had uncommitted
changes), the machine, the wall time, the verdict (k of n and what each failing replicate showed),
and per learner and learning rate: the collapsed runs and the final rewards of every seed of every
replicate, with their totals and means pooled over the replicates. A table goes to stderr.
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

from rlhf_core.bench import git_state, machine  # noqa: E402


def pooled(results: list[dict]) -> dict:
    """Per learner and rate, over every replicate: collapsed runs, runs, mean final reward, every final reward."""
    from rlhf_core.labs import stability

    out = {}
    for method in results[0]["methods"]:
        rows = []
        rates = results[0]["methods"][method]["learning_rates"]
        for i, lr in enumerate(rates):
            finals = [f for r in results for f in r["methods"][method]["final_reward"][i]]
            collapsed = [c for r in results for c in r["methods"][method]["collapsed"][i]]
            works = [stability.works(r, method)[i] for r in results]
            rows.append({"learning_rate": lr, "collapsed_runs": sum(collapsed), "runs": len(collapsed),
                         "mean_final_reward": round(sum(finals) / len(finals), 4),
                         "replicates_where_it_works": sum(works), "final_rewards": finals})
        out[method] = rows
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="replicates (the lab's --seeds), 1 to 10")
    p.add_argument("--quick", action="store_true", help="the lab's QUICK settings (the tests' size)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a lab setting, as for the CLI")
    p.add_argument("--out", help="also write the JSON here")
    a = p.parse_args(argv)

    from rlhf_core import labs

    args = ["lab", "stability", "--seeds", str(a.seeds), "--json"] + (["--quick"] if a.quick else [])
    args += [f"--set={s}" for s in a.set]
    command = "python -m rlhf_core " + " ".join(f"'{x}'" if any(c in x for c in "[], ") else x for x in args)
    print(f"[stability sweep] {command}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlhf_core", *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    result = json.loads(proc.stdout)
    results = labs.per_seed_results(result)
    verdict = labs.verdict("stability", result)
    out = {
        "command": command, "git": git_state(("docs/stability-sweep.json",)), "machine": machine(), "wall_s": round(wall, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": results[0]["config"], "replicate_seeds": [r["config"]["seed"] for r in results],
        "verdict": {k: verdict[k] for k in ("state", "k", "n", "summary", "per_seed")},
        "replicates": [{"seed": r["config"]["seed"], "headline": labs.module("stability").headline(r),
                        "methods": {m: {k: d[k] for k in ("learning_rates", "collapses", "final_reward", "works")}
                                    for m, d in r["methods"].items()}} for r in results],
        "pooled": pooled(results),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(f"[stability sweep] {verdict['summary'][:400]}  ({wall:.0f} s)", file=sys.stderr)
    for method, rows in out["pooled"].items():
        cells = "  ".join(f"lr {r['learning_rate']:<9g} {r['collapsed_runs']:>2}/{r['runs']} collapsed, "
                          f"mean {r['mean_final_reward']:.2f}, works in {r['replicates_where_it_works']}/{len(results)}"
                          for r in rows)
        print(f"  {method:14s} {cells}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
