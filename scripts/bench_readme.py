"""Write the README's performance table from docs/bench-results.json: `python scripts/bench_readme.py`.

The table sits between the `<!-- bench-table:start -->` and `<!-- bench-table:end -->` markers
and is never edited by hand: run `python -m rlhf_core bench --out docs/bench-results.json`, then
this script.
"""

from __future__ import annotations

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rlhf_core.bench import TARGETS  # noqa: E402

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


def main() -> int:
    with open(os.path.join(ROOT, "docs", "bench-results.json")) as f:
        record = json.load(f)
    readme = os.path.join(ROOT, "README.md")
    with open(readme) as f:
        text = f.read()
    block = re.compile(r"(<!-- bench-table:start -->\n).*?(<!-- bench-table:end -->)", re.S)
    if not block.search(text):
        print("README.md has no bench-table markers", file=sys.stderr)
        return 1
    with open(readme, "w") as f:
        f.write(block.sub(lambda m: m.group(1) + table(record) + "\n" + m.group(2), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
