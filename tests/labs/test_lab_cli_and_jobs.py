"""The lab command line and the app's lab jobs (subprocess, progress, per-config cache)."""

import json
import time

from rlhf_core import labs
from rlhf_core.labs.support import jobs

from ..conftest import cli

TINY_RM = {"labels": [8, 16], "held_out_pairs": 50, "epochs": 0.5}


def test_cli_prints_the_json_with_the_named_fields():
    args = [f"--set={k}={json.dumps(v)}" for k, v in TINY_RM.items()]
    out = cli("lab", "rm_curve", "--json", *args)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["labels"] == [8, 16] and len(result["accuracy"]) == 2
    assert "shape_problems" in result and result["config"]["epochs"] == 0.5


def test_cli_names_the_bad_setting_and_the_unknown_lab():
    out = cli("lab", "rm_curve", "--set", "epochs=99")
    assert out.returncode == 2 and "epochs" in out.stderr
    out = cli("lab", "no_such_lab")
    assert out.returncode == 2 and "no_such_lab" in out.stderr and "pipeline" in out.stderr


def test_every_registered_lab_has_a_module_following_the_contract():
    for name in labs.LABS:
        mod = labs.module(name)
        assert mod.NAME == name and isinstance(mod.CHECKS, list)
        assert mod.CHECKS or mod.ILLUSTRATION, f"{name}: no checks and no reason why it is an illustration"
        labs.config(name)  # defaults are valid
        labs.config(name, quick=True)
        labs.config(name, mod.LARGEST)  # the largest settings are within the UI's bounds
        for spec in labs.settings(name):
            assert spec["help"], f"{name}.{spec['name']} is undocumented"


def test_evidence_settings_are_heavier_versions_of_the_same_design():
    """A lab's EVIDENCE only names settings that differ from its defaults, is valid, and keeps every
    kind of arm of the design (the interactive default runs each role's arms, and so every check, on
    a smaller scale: overoptimization's largest proxy has 300 labels instead of 2,000)."""
    for name in labs.LABS:
        mod, heavier = labs.module(name), labs.evidence_settings(name)
        defaults = labs.config(name).model_dump()
        assert all(defaults[k] != v for k, v in heavier.items()), f"{name}: EVIDENCE repeats a default"
        full = labs.config(name, heavier)
        if heavier and hasattr(mod, "design"):
            roles = {a["role"] for a in mod.design(full)["arms"]}
            assert {a["role"] for a in mod.design(labs.config(name))["arms"]} == roles, name
        stored = labs.stored_result(name)
        if stored:  # the committed 5-seed result was measured at exactly these settings
            assert not stored["stale"], f"{name}: stored result is not at the evidence settings"


def test_cli_evidence_flag_runs_the_evidence_settings_and_refuses_quick():
    out = cli("lab", "overoptimization", "--evidence", "--quick")
    assert out.returncode == 2 and "--evidence" in out.stderr
    out = cli("lab", "no_such_lab", "--evidence")
    assert out.returncode == 2 and "no_such_lab" in out.stderr


def test_job_runs_in_a_subprocess_and_caches_per_config(runs_root):
    job = jobs.start(runs_root, "rm_curve", TINY_RM)
    assert job.state == "running"
    deadline = time.time() + 240
    while jobs.status(runs_root, "rm_curve", TINY_RM).state == "running" and time.time() < deadline:
        time.sleep(0.5)
    done = jobs.status(runs_root, "rm_curve", TINY_RM)
    assert done.state == "done", done.error
    assert done.result["labels"] == [8, 16]
    assert jobs.status(runs_root, "rm_curve", dict(TINY_RM, seed=1)).state == "none"  # another config
    assert jobs.start(runs_root, "rm_curve", TINY_RM).state == "done"  # cached: nothing restarts
    jobs.forget(runs_root, "rm_curve", TINY_RM)
    assert jobs.status(runs_root, "rm_curve", TINY_RM).state == "none"


def test_failed_job_reports_its_error(runs_root, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setattr(jobs.sys, "executable", "/bin/false")
    jobs.start(runs_root, "rm_curve", TINY_RM)
    deadline = time.time() + 30
    while jobs.status(runs_root, "rm_curve", TINY_RM).state == "running" and time.time() < deadline:
        time.sleep(0.2)
    failed = jobs.status(runs_root, "rm_curve", TINY_RM)
    assert failed.state == "failed" and failed.error


def test_a_crashing_lab_ends_with_one_error_line(monkeypatch, capsys):
    mod = labs.module("rm_curve")

    def boom(cfg, progress=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mod, "run", boom)
    assert labs.run_lab("rm_curve", as_json=True) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: lab 'rm_curve' failed: RuntimeError: disk on fire"


def _fake_lab_executable(tmp_path):
    """Stands in for python: writes a temporary file, starts a child in its process group (as
    lab --seeds does), and waits; so a test can cancel a lab job without training anything."""
    script = tmp_path / "fake-python"
    script.write_text('#!/bin/sh\ntouch "$TMPDIR/scratch-file"\nsleep 300 &\necho $! > "$TMPDIR/child.pid"\nwait\n')
    script.chmod(0o755)
    return str(script)


def test_hosted_lab_limits_and_cancel_of_the_whole_job(runs_root, monkeypatch, tmp_path):
    """One lab job per visitor and RLHF_EXPLORER_LAB_JOBS across the server; only its owner cancels
    it; cancel ends the job and its children and removes its scratch files."""
    import os
    import pytest

    from rlhf_core.config import ConfigError

    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "1")
    monkeypatch.setenv("RLHF_EXPLORER_LAB_JOBS", "1")
    monkeypatch.setattr(jobs.sys, "executable", _fake_lab_executable(tmp_path))
    alice, bob = "a" * 32, "b" * 32
    job = jobs.start(runs_root, "rm_curve", TINY_RM, owner=alice)
    assert job.state == "running"
    scratch = jobs._paths(runs_root, "rm_curve", labs.config("rm_curve", TINY_RM), 1)["scratch"]
    deadline = time.time() + 10
    while not os.path.exists(os.path.join(scratch, "child.pid")) and time.time() < deadline:
        time.sleep(0.05)
    child = int(open(os.path.join(scratch, "child.pid")).read())
    with pytest.raises(ConfigError, match="you already have a lab running"):
        jobs.start(runs_root, "rm_curve", dict(TINY_RM, seed=1), owner=alice)
    with pytest.raises(ConfigError, match="at most 1 lab job at once"):
        jobs.start(runs_root, "rm_curve", dict(TINY_RM, seed=2), owner=bob)
    with pytest.raises(ConfigError, match="only they can cancel"):
        jobs.cancel(runs_root, "rm_curve", TINY_RM, owner=bob)
    assert jobs.status(runs_root, "rm_curve", TINY_RM).owner == alice
    jobs.cancel(runs_root, "rm_curve", TINY_RM, owner=alice)
    assert jobs.status(runs_root, "rm_curve", TINY_RM).state == "none"
    assert not os.path.exists(scratch)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the job's child went with it
    assert jobs.running_jobs(runs_root) == []
    assert jobs.start(runs_root, "rm_curve", dict(TINY_RM, seed=2), owner=bob).state == "running"  # a slot again
    jobs.cancel(runs_root, "rm_curve", dict(TINY_RM, seed=2), owner=bob)
