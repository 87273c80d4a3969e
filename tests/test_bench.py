"""The benchmark suite runs (--quick) and reports every key; no timing is asserted here."""

import json

import pytest

from .conftest import cli

KEYS = {"speedup_vs_trl_defaults", "overhead_vs_tuned_trl", "first_point_warm_s", "first_point_cold_s",
        "reward_plus_0_4_s", "ui_refresh_ms", "run_peak_rss_mb", "server_peak_rss_mb", "machine",
        "smollm2_step_s", "smollm2_peak_rss_mb", "smollm2_reward_plus_0_3_s"}


@pytest.mark.slow
def test_bench_quick_json_shape():
    r = cli("bench", "--quick", "--json", timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert KEYS <= set(data)
    for key in KEYS - {"machine", "reward_plus_0_4_s", "smollm2_step_s", "smollm2_peak_rss_mb",
                       "smollm2_reward_plus_0_3_s"}:  # 8 quick steps may not gain 0.4 reward
        assert isinstance(data[key], (int, float)) and data[key] > 0, (key, data[key], data["detail"])
    assert data["machine"]["cores"] >= 1
    assert data["detail"]["first_point_warm"]["warm_worker_used"] is True
    assert data["detail"]["first_point_cold"]["warm_worker_used"] is False
    assert set(data["detail"]["ours"]) == {"grpo", "rloo", "ppo"}
    from rlhf_core.zoo import smollm2

    if smollm2.missing():
        assert data["smollm2_step_s"] is None and "not installed" in data["detail"]["smollm2"]["skipped"]
    else:
        assert data["smollm2_step_s"] > 0 and data["smollm2_peak_rss_mb"] > 0, data["detail"]["smollm2"]
