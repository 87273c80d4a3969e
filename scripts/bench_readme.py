"""Write the README's performance tables from the benchmark records: `python scripts/bench_readme.py`.

The main table sits between the `<!-- bench-table:start -->` and `<!-- bench-table:end -->`
markers (from docs/bench-results.json: `python -m rlhf_core bench --out docs/bench-results.json`),
the class-load one between `<!-- classroom:start -->` and `<!-- classroom:end -->` (from
docs/classroom.json: `python -m rlhf_core bench --classroom --out docs/classroom.json`). Neither
is edited by hand.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rlhf_core.bench import TARGETS, fill_between  # noqa: E402

LABELS = {
    "speedup_vs_trl_defaults": ("step time, TRL's default GRPO config / ours (same lr, 24-token completions)", "{:.2f}×"),
    "overhead_vs_tuned_trl": ("step time, ours / a tuned bare TRL loop (same lr, 24-token completions)", "{:.2f}×"),
    "time_to_reward_gain_vs_trl_defaults": ("time to +0.2 reward from launch, TRL's defaults / ours", "{:.1f}×"),
    "first_point_warm_s": ("Start → first stored step, warm worker (median of 3)", "{:.2f} s"),
    "first_point_cold_s": ("Start → first stored step, cold worker (median of 3)", "{:.1f} s"),
    "reward_plus_0_4_s": ("Start → mean reward +0.4, default preset, cold (median of 3 seeds)", "{:.1f} s"),
    "reward_plus_0_4_warm_s": ("Start → mean reward +0.4, default preset, warm (median of 3 seeds)", "{:.1f} s"),
    "figure_build_ms": ("build the Compare figures, 4 runs × 2,000 steps (server side)", "{:.0f} ms"),
    "click_latency_p95_ms": ("click → visible response in Chromium while training, p95", "{:.0f} ms"),
    "run_peak_rss_mb": ("peak memory, default run", "{:.0f} MB"),
    "server_peak_rss_mb": ("peak memory, app server + warm worker, every page visited", "{:.0f} MB"),
    "smollm2_step_s": ("SmolLM2-135M step (LoRA, 8 × 24 tokens)", "{:.2f} s"),
    "smollm2_peak_rss_mb": ("SmolLM2-135M peak memory", "{:.0f} MB"),
    "smollm2_reward_plus_0_3_s": ("SmolLM2-135M: worker start → mean reward +0.3", "{:.0f} s"),
}


def table(record: dict) -> str:
    lines = ["| figure | target | measured here | |", "|---|---|---|---|"]
    for key, (op, target) in TARGETS.items():
        label, fmt = LABELS[key]
        value = record.get(key)
        met = record["targets"][key]["met"]
        shown = "not reached" if value is None else fmt.format(value)
        verdict = "" if met is None else ("met" if met else "**missed**")
        lines.append(f"| {label} | {op} {target:g} | {shown} | {verdict} |")
    pixels = record.get("browser_step_to_pixels_ms")
    if pixels:
        lines.append(f"| step stored → drawn in Chromium while training, p50 / p95 | | "
                     f"{pixels['p50']:.0f} / {pixels['p95']:.0f} ms | |")
    m, g = record["machine"], record["git"]
    lines.append("")
    dirty = " (with uncommitted changes)" if g["uncommitted_changes"] else ""
    bf16 = "native" if m.get("bf16_native") else "emulated"
    gpu = f"GPU {m['gpu']}" if m.get("gpu") else "no GPU"
    lines.append(f"Measured by `{record['command']}` at commit `{g['commit'][:7]}`{dirty} on {m['cores']} cores "
                 f"({m.get('cpu_model') or m['cpu']}, bf16 {bf16}), {m['memory_gb']} GB, torch {m['torch']}, {gpu}.")
    return "\n".join(lines)


def classroom_table(record: dict) -> str:
    """The class-load figures: the wall time against its target, then each visitor."""
    target = record.get("target_wall_s")
    met = "" if target is None else ("met" if record["wall_s"] <= target else "**missed**")
    lines = [f"{record['visitors']} visitors, {record['steps']} steps each: **{record['wall_s']:.0f} s** from the first "
             f"Start to the last run finished" + (f" (target ≤ {target:g} s: {met})" if target else "") + "; server peak "
             f"{record['server_peak_rss_mb']:.0f} MB; {len(record['exceptions'])} exceptions"
             + (" (" + "; ".join(record["exceptions"])[:300] + ")" if record["exceptions"] else "") + ".",
             "", "| visitor | waited (Start → first step) | trained | warm worker | page behind the store |",
             "|---|---|---|---|---|"]
    for v in record["per_visitor"]:
        cells = [f"{v[k]:.1f} s" if isinstance(v.get(k), (int, float)) else "–" for k in ("wait_s", "run_s")]
        stale = f"{v['page_stale_s']:.1f} s" if isinstance(v.get("page_stale_s"), (int, float)) else "–"
        lines.append(f"| {v['visitor'] + 1} | {cells[0]} | {cells[1]} | {'yes' if v.get('warm_worker') else 'no'} | {stale} |")
    m, g = record["machine"], record["git"]
    dirty = " (with uncommitted changes)" if g["uncommitted_changes"] else ""
    lines += ["", f"Measured by `{record['command']}` at commit `{g['commit'][:7]}`{dirty} on {m['cores']} cores "
              f"({m.get('cpu_model') or m['cpu']})."]
    return "\n".join(lines)


def _fill(text: str, marker: str, body: str) -> str:
    return fill_between(text, f"<!-- {marker}:start -->", f"<!-- {marker}:end -->", body)


def main() -> int:
    readme = os.path.join(ROOT, "README.md")
    with open(readme) as f:
        text = f.read()
    with open(os.path.join(ROOT, "docs", "bench-results.json")) as f:
        text = _fill(text, "bench-table", table(json.load(f)))
    classroom = os.path.join(ROOT, "docs", "classroom.json")
    if os.path.exists(classroom):
        with open(classroom) as f:
            text = _fill(text, "classroom", classroom_table(json.load(f)))
    with open(readme, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
