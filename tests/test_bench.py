"""The benchmark suite runs (--quick) and reports every key; no timing is asserted here."""

import json

import pytest

from .conftest import cli

KEYS = {"speedup_vs_trl_defaults", "overhead_vs_tuned_trl", "time_to_reward_gain_vs_trl_defaults",
        "first_point_warm_s", "first_point_cold_s", "reward_plus_0_4_s", "reward_plus_0_4_warm_s", "figure_build_ms",
        "browser_step_to_pixels_ms", "click_latency_p95_ms", "run_peak_rss_mb", "server_peak_rss_mb", "machine",
        "smollm2_step_s", "smollm2_peak_rss_mb", "smollm2_reward_plus_0_3_s"}
# 8 quick steps may not gain the reward these need
MAY_BE_NONE = {"reward_plus_0_4_s", "reward_plus_0_4_warm_s", "time_to_reward_gain_vs_trl_defaults"}


@pytest.mark.slow
def test_bench_quick_json_shape(tmp_path):
    out = tmp_path / "bench.json"
    r = cli("bench", "--quick", "--json", "--out", str(out), timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert KEYS <= set(data)
    from rlhf_core import bench_browser

    browser_keys = {"browser_step_to_pixels_ms", "click_latency_p95_ms", "server_peak_rss_mb"}
    numbers = KEYS - MAY_BE_NONE - browser_keys - {"machine", "smollm2_step_s", "smollm2_peak_rss_mb",
                                                   "smollm2_reward_plus_0_3_s"}
    for key in numbers:
        assert isinstance(data[key], (int, float)) and data[key] > 0, (key, data[key])
    assert data["machine"]["cores"] >= 1
    if bench_browser.unavailable():  # no Chromium or Playwright: null, and the reason
        assert all(data[k] is None for k in browser_keys) and data["detail"]["browser"]["skipped"]
    else:
        assert data["detail"]["browser"]["responsiveness"]["errors"] == []
        assert data["click_latency_p95_ms"] > 0 and data["server_peak_rss_mb"] > 0
        assert data["browser_step_to_pixels_ms"]["p50"] > 0 and data["browser_step_to_pixels_ms"]["p95"] > 0
    assert all(r["warm_worker_used"] for r in data["detail"]["from_start_warm"])
    assert not any(r["warm_worker_used"] for r in data["detail"]["from_start_cold"])
    # like for like: every side of the step-time comparison at one lr and fixed-length completions
    for side in (data["detail"]["ours"]["grpo"], data["detail"]["trl_defaults_grpo"], data["detail"]["tuned_trl_grpo"]):
        assert side["mean_response_length"] == data["detail"]["completion_tokens"], side
    assert data["detail"]["trl_defaults_grpo"]["learning_rate"] == data["detail"]["tuned_trl_grpo"]["learning_rate"]
    assert data["detail"]["trl_defaults_grpo"]["gradient_checkpointing"] is True
    assert set(data["detail"]["ours"]) == {"grpo", "rloo", "ppo"}
    from rlhf_core.zoo import smollm2

    if smollm2.missing():
        assert data["smollm2_step_s"] is None and "not installed" in data["detail"]["smollm2"]["skipped"]
    else:
        assert data["smollm2_step_s"] > 0 and data["smollm2_peak_rss_mb"] > 0, data["detail"]["smollm2"]
    # --out records how and where the figures were made
    record = json.loads(out.read_text())
    assert record["command"].startswith("python -m rlhf_core bench --quick --out")
    assert record["git"]["commit"] and record["machine"]["cores"] >= 1
