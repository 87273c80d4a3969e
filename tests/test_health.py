"""Health alarms fire on the patterns they describe, and stay quiet on a healthy run."""

from rlhf_core import health


def rows(n=10, **values):
    base = {"reward": 0.3, "kl": 2.0, "entropy": 5.0, "clip_fraction": 0.05, "response_length": 24.0}
    return [{"step": i + 1, **base, **values} for i in range(n)]


FLUENT = [{"completion": t} for t in (
    "was a fine film with a strong cast", "is the worst thing I have seen this year",
    "had me laughing from start to finish", "felt long but the ending made up for it",
    "should never have been made at all", "looks cheap although the music is lovely",
    "tells an old story in a new way", "left my whole family in tears")]


def keys(alarms):
    return {a.key for a in alarms}


def test_healthy_run_has_no_alarms():
    assert health.check(rows(), FLUENT, "running") == []


def test_each_alarm():
    assert "negative_kl" in keys(health.check(rows(kl=-2.0), FLUENT))
    assert "kl_runaway" in keys(health.check(rows(kl=40.0), FLUENT))
    collapsed = rows() + [{"step": 11 + i, "reward": 0.9, "kl": 3.0, "entropy": 1.0, "clip_fraction": 0.0,
                           "response_length": 24.0} for i in range(5)]
    assert "entropy_collapse" in keys(health.check(collapsed, FLUENT))
    hacked = [{"completion": "great great great best best great great best"} for _ in range(8)]
    assert "repetition" in keys(health.check(rows(), hacked))
    assert "clip_fraction" in keys(health.check(rows(clip_fraction=0.5), FLUENT))
    diverged = health.check([], [], "diverged")
    assert keys(diverged) == {"diverged"} and diverged[0].severity == "error"


def test_every_alarm_explains_and_suggests():
    alarms = health.check(rows(kl=40.0, clip_fraction=0.5), [{"completion": "good " * 30}], "diverged")
    assert len(alarms) >= 4
    for a in alarms:
        assert a.explanation.endswith(".") and a.try_this.endswith(".")
