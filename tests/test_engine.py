"""The run engine: config, worker, store, control, failure semantics and the CLI."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from rlhf_core import runs, zoo
from rlhf_core.prompts import continues_word, review_openings
from rlhf_core.config import ConfigError, RunConfig, parse_set_args
from rlhf_core.control import write_control
from rlhf_core.store import RunStore, check_integrity
from rlhf_core.worker import run_worker

from .conftest import ROOT, cli

FAST = {"steps": 3, "prompts_per_step": 4, "generations_per_prompt": 2, "response_length": 12}


def make_run(tmp_path, name="run", **overrides):
    cfg = RunConfig.parse({**FAST, **overrides})
    return runs.create_run(cfg, path=str(tmp_path / name))


# ---- config --------------------------------------------------------------------------------------

def test_config_yaml_round_trip():
    cfg = RunConfig.parse({"algorithm": "ppo", "kl_coef": 0.2, "update_epochs": 4, "gamma": 0.99})
    assert RunConfig.from_yaml_text(cfg.to_yaml()) == cfg


@pytest.mark.parametrize("data,needle", [
    ({"kl_coef": -1}, "kl_coef must be ≥ 0.0, got -1"),
    ({"clip_range": 0}, "clip_range must be > 0"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"steps": "many"}, "steps must be a whole number, got 'many'"),
    ({"algorithm": "dqn"}, "algorithm must be one of"),
    ({"klcoef": 1}, "klcoef: unknown config key"),
    ({"generations_per_prompt": 1}, "generations_per_prompt must be >= 2 for grpo"),
    ({"loss_type": "gspo"}, "loss_type must be one of 'dapo', 'grpo', 'dr_grpo' or 'bnpo', got 'gspo'"),
    ({"algorithm": "ppo", "loss_type": "dr_grpo"}, "loss_type 'dr_grpo' applies to grpo only, not ppo"),
    ({"algorithm": "rloo", "scale_rewards": "none"}, "scale_rewards 'none' applies to grpo only, not rloo"),
])
def test_config_errors_name_field_and_value(data, needle):
    with pytest.raises(ConfigError) as e:
        RunConfig.parse(data)
    assert needle in str(e.value)


def test_yaml_is_loaded_safely(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.from_yaml_text("steps: !!python/object/apply:os.system ['echo hacked']")
    with pytest.raises(ConfigError, match="empty"):
        RunConfig.from_yaml_text("")


def test_set_args_parse_types():
    assert parse_set_args(["kl_coef=0.1", "steps=5", "algorithm=ppo"]) == {"kl_coef": 0.1, "steps": 5,
                                                                           "algorithm": "ppo"}
    with pytest.raises(ConfigError, match="nope: unknown config key"):
        parse_set_args(["nope=1"])


# ---- the worker, in process ------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_each_algorithm_stores_metrics_and_samples(tmp_path, algorithm):
    path = make_run(tmp_path, algorithm=algorithm, update_epochs=2)
    assert run_worker(path, install_sigterm=False) == "finished"
    store = RunStore(path)
    rows = store.metrics_since(-1)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        for key in ("reward", "reward_std", "kl", "objective", "entropy", "clip_fraction", "policy_loss",
                    "response_length", "kl_coef", "clip_range", "step_time"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r[key])
        assert r["objective"] == pytest.approx(r["reward"] - r["kl_coef"] * r["kl"])
        assert any(k.startswith("trl/") for k in r)
    # before the first update the policy is the reference model: KL must be 0 for every sample
    assert abs(rows[0]["kl"]) < 1e-3, rows[0]["kl"]
    assert all(abs(s["kl"]) < 1e-3 for s in RunStore(path).samples(1))
    if algorithm == "ppo":
        assert isinstance(rows[-1]["value_loss"], float) and isinstance(rows[-1]["approx_kl"], float)
    samples = store.samples(3)
    assert len(samples) == FAST["prompts_per_step"] * FAST["generations_per_prompt"]
    assert all(s["prompt"] and isinstance(s["reward"], float) and isinstance(s["kl"], float) for s in samples)
    assert_openings_end_words([s["prompt"] for s in samples], "train")
    with_tokens = [s for s in samples if s["tokens"]]
    assert with_tokens and all(len(s["tokens"]) == len(s["logratios"]) for s in with_tokens)
    assert [h["status"] for h in store.status_history()] == ["queued", "starting", "running", "finished"]
    assert store.metrics_since(2)[0]["step"] == 3  # incremental reads


def test_grpo_loss_type_and_reward_scaling_reach_trl(tmp_path, monkeypatch):
    """The trainer that runs holds the run's loss_type and scale_rewards, not TRL's defaults
    (dapo, group). Fails if either knob is dropped on the way to GRPOConfig."""
    from rlhf_core.algorithms import grpo

    seen = {}
    train = grpo.GroupAdapter.train

    def recording_train(self):
        seen[self.cfg.loss_type, self.cfg.scale_rewards] = (self.trainer.loss_type, self.trainer.scale_rewards)
        train(self)

    monkeypatch.setattr(grpo.GroupAdapter, "train", recording_train)
    for loss_type, scale in [("dr_grpo", "batch"), ("grpo", "none")]:
        path = make_run(tmp_path, name=loss_type, steps=1, loss_type=loss_type, scale_rewards=scale)
        assert run_worker(path, install_sigterm=False) == "finished"
        assert RunStore(path).meta()["config"]["loss_type"] == loss_type
    assert seen == {("dr_grpo", "batch"): ("dr_grpo", "batch"), ("grpo", "none"): ("grpo", "none")}


def test_live_kl_coef_change_is_an_event_and_logged(tmp_path):
    path = make_run(tmp_path, steps=5, kl_coef=0.05)

    def progress(step, total, metrics):
        if step == 2:
            write_control(path, kl_coef=0.3)

    assert run_worker(path, progress=progress, install_sigterm=False) == "finished"
    store = RunStore(path)
    events = [e for e in store.events() if e["kind"] == "knob"]
    assert events == [dict(events[0], step=3, name="kl_coef", to=0.3)]
    assert events[0]["from"] == pytest.approx(0.05)
    betas = {r["step"]: r["kl_coef"] for r in store.metrics_since(-1)}
    assert betas[2] == pytest.approx(0.05) and betas[3] == pytest.approx(0.3) and betas[5] == pytest.approx(0.3)


def test_live_kl_coef_from_zero_works(tmp_path):
    """TRL builds no reference model at beta=0; raising it live must not crash."""
    path = make_run(tmp_path, steps=4, kl_coef=0.0)

    def progress(step, total, metrics):
        if step == 1:
            write_control(path, kl_coef=0.5, clip_range=0.1)

    assert run_worker(path, progress=progress, install_sigterm=False) == "finished"
    last = RunStore(path).metrics_since(-1)[-1]
    assert last["kl_coef"] == 0.5 and last["clip_range"] == 0.1


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_stop_via_control(tmp_path, algorithm):
    path = make_run(tmp_path, steps=50, algorithm=algorithm)

    def progress(step, total, metrics):
        if step == 2:
            write_control(path, stop=True)

    assert run_worker(path, progress=progress, install_sigterm=False) == "stopped"
    assert RunStore(path).count_steps() == 2


def test_nan_reward_gives_diverged(tmp_path):
    reward = tmp_path / "nan_reward.py"
    reward.write_text("def reward(prompts, completions):\n    return [float('nan')] * len(completions)\n")
    path = make_run(tmp_path, reward=f"file:{reward}:reward")
    assert run_worker(path, allow_code=True, install_sigterm=False) == "diverged"
    assert "nan" in RunStore(path).last_status()["message"]


def test_failure_keeps_message_and_traceback(tmp_path):
    reward = tmp_path / "boom.py"
    reward.write_text("def reward(prompts, completions):\n    raise ValueError('bad reward')\n")
    path = make_run(tmp_path, reward=f"file:{reward}:reward")
    assert run_worker(path, allow_code=True, install_sigterm=False) == "failed"
    last = RunStore(path).last_status()
    assert "bad reward" in last["message"]


def test_file_reward_without_opt_in_fails_clearly(tmp_path):
    reward = tmp_path / "r.py"
    reward.write_text("def reward(p, c):\n    return [0.0] * len(c)\n")
    path = make_run(tmp_path, reward=f"file:{reward}:reward")
    assert run_worker(path, install_sigterm=False) == "failed"
    assert "--allow-code" in RunStore(path).last_status()["message"]


# ---- the worker as a subprocess --------------------------------------------------------------------

def wait_for(predicate, timeout=120.0, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


def test_kill_9_leaves_readable_store_with_status_crashed(runs_root):
    run_id = runs.submit(RunConfig.parse({**FAST, "steps": 1000}))
    path = runs.run_dir(run_id)
    wait_for(lambda: os.path.exists(os.path.join(path, "run.sqlite")) and RunStore(path).count_steps() >= 3)
    pid = RunStore(path).meta()["pid"]
    os.kill(pid, signal.SIGKILL)
    info = wait_for(lambda: (i := runs.info(run_id)).status == "crashed" and i)
    committed = info.steps_done
    assert committed >= 3
    assert check_integrity(path) is None
    rows = RunStore(path).metrics_since(-1)
    assert [r["step"] for r in rows] == list(range(1, committed + 1))


def test_sigterm_gives_stopped(runs_root):
    run_id = runs.submit(RunConfig.parse({**FAST, "steps": 1000}))
    path = runs.run_dir(run_id)
    wait_for(lambda: RunStore(path).count_steps() >= 1)
    os.kill(RunStore(path).meta()["pid"], signal.SIGTERM)
    assert wait_for(lambda: runs.info(run_id).status in ("stopped", "crashed", "failed") and runs.info(run_id)
                    ).status == "stopped"


def test_stop_takes_under_two_seconds_and_queue_drains(runs_root):
    first = runs.submit(RunConfig.parse({**FAST, "steps": 1000}), cap=1)
    second = runs.submit(RunConfig.parse(FAST), cap=1)
    assert runs.info(second).status == "queued"
    wait_for(lambda: RunStore(runs.run_dir(first)).count_steps() >= 1)
    t0 = time.time()
    runs.stop(first)
    wait_for(lambda: runs.info(first).status == "stopped", timeout=10)
    assert time.time() - t0 <= 2.0
    # the stopping worker starts the queued run; it then finishes on its own
    assert wait_for(lambda: runs.info(second).status == "finished" and True, timeout=120)
    assert runs.stop(first) == "stopped"  # a second Stop (another tab) is harmless


def test_alive_is_not_fooled_by_a_zombie():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(0)", "rlhf_core"])
    time.sleep(1.0)  # exited, not yet reaped: a zombie
    assert runs.alive(proc.pid) is False
    assert runs.alive(os.getpid()) is ("rlhf_core" in open("/proc/self/cmdline").read())


def test_the_pool_knows_nothing_of_runs():
    """One direction: runs hands the pool what it needs (counts, the cap); the pool imports
    neither runs nor the store, so ownership and queues live in runs alone."""
    import ast

    tree = ast.parse(open(os.path.join(ROOT, "rlhf_core", "pool.py")).read())
    imported = {(n.module or "") + ":" + ",".join(a.name for a in n.names)
                for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [m for m in imported if "runs" in m or "store" in m], imported


@pytest.mark.parametrize("bad", ["../../etc", "a/b", "", "..", "x" * 200, "run id"])
def test_run_ids_are_validated(bad, runs_root):
    with pytest.raises(runs.RunError, match="not a valid run id"):
        runs.info(bad)


# ---- CLI -------------------------------------------------------------------------------------------

def test_cli_train_show_export(tmp_path):
    run_dir = tmp_path / "cli-run"
    r = cli("train", "-", "--run-dir", str(run_dir), "--set", "steps=2", "--set", "prompts_per_step=4",
            "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli("show", str(run_dir), "--json")
    shown = json.loads(r.stdout)
    assert set(shown) == {"status", "steps_done", "steps_total", "last", "error", "config"}
    assert shown["status"] == "finished" and shown["steps_done"] == 2 and "reward" in shown["last"]
    r = cli("export", str(run_dir), "--csv", str(tmp_path / "m.csv"))
    assert r.returncode == 0
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert len(lines) == 3 and "reward" in lines[0].split(",")


@pytest.mark.parametrize("setting,needle", [
    ("kl_coef=-1", "kl_coef must be ≥ 0"),
    ("steps=0", "steps must be ≥ 1"),
    ("algorithm=dqn", "algorithm must be one of"),
    ("reward=nope", "unknown reward 'nope'"),
    ("loss_type=gspo", "loss_type must be one of"),
])
def test_cli_invalid_config_exits_2_naming_field(setting, needle):
    r = cli("train", "-", "--set", setting)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_invalid_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kl_coef: [1, 2\n")
    r = cli("train", str(bad))
    assert r.returncode == 2 and str(bad) in r.stderr and "not valid YAML" in r.stderr


def test_cli_run_failure_exits_1(tmp_path):
    r = cli("train", "-", "--run-dir", str(tmp_path / "x"), "--set", "policy=gpt2", "--quiet")
    assert r.returncode == 1 and "unreachable" in r.stderr


def _accelerate_train(run_dir, processes: int, *sets: str):
    # accelerate's torchrun-based launcher is the one behind --multi_gpu; on a CPU-only machine it
    # starts the processes and they meet over gloo (its --cpu launcher starts only one without MPI)
    launcher = ["--multi_gpu"] if processes > 1 else ["--cpu"]
    return subprocess.run(["accelerate", "launch", *launcher, "--num_processes", str(processes), "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlhf_core",
                           "train", "-", "--run-dir", str(run_dir), *[a for s in sets for a in ("--set", s)],
                           "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))


def test_accelerate_launch_single_process(tmp_path):
    r = _accelerate_train(tmp_path / "acc", 1, "steps=2", "prompts_per_step=4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert RunStore(str(tmp_path / "acc")).count_steps() == 2


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_accelerate_launch_two_processes(tmp_path, algorithm):
    """DDP on the CPU (gloo): both processes train, only the main one writes the store, and the
    store holds every step run and every sample of each step (both processes' halves)."""
    steps = 3
    r = _accelerate_train(tmp_path / "ddp", 2, f"algorithm={algorithm}", f"steps={steps}", "prompts_per_step=4",
                          "generations_per_prompt=2", "response_length=8")
    assert r.returncode == 0, r.stderr[-3000:]
    store = RunStore(str(tmp_path / "ddp"))
    assert [row["step"] for row in store.metrics_since(-1)] == list(range(1, steps + 1))
    assert store.last_status()["status"] == "finished" and store.meta()["processes"] == 2
    assert len(store.samples(steps)) == 4 * 2
    assert "run dir:" in r.stderr and r.stderr.count("finished: 3/3 steps") == 1  # one summary, from main


# ---- learning ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_default_grpo_preset_raises_vader_reward(tmp_path):
    """An honest learning test: the classic preset must raise mean VADER reward over its run.
    Measured gains over 60 steps for seeds 0-3: +0.70, +0.77, +0.56, +0.88, so a 0.3 margin holds
    with room to spare while still failing for a run that does not learn."""
    cfg = RunConfig.from_yaml(os.path.join(ROOT, "presets", "classic-grpo.yaml")).with_overrides({"seed": 0})
    path = runs.create_run(cfg, path=str(tmp_path / "learn"))
    assert run_worker(path, install_sigterm=False) == "finished"
    rewards = [r["reward"] for r in RunStore(path).metrics_since(-1)]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last - first >= 0.3, (first, last)


def test_warm_pool_hands_a_run_to_a_preloaded_worker(runs_root, monkeypatch):
    from rlhf_core import pool

    monkeypatch.setenv("RLHF_EXPLORER_WARM_POOL", "1")
    root = runs.ensure_root()
    assert runs.top_up_pool(root, owner_pid=os.getpid()) == 1
    assert runs.top_up_pool(root) == 0  # one is enough, and it is not started twice
    wait_for(lambda: any(n.endswith(".ready") for n in os.listdir(pool.pool_dir(root))), timeout=120)
    t0 = time.time()
    run_id = runs.submit(RunConfig.parse(FAST))
    path = runs.run_dir(run_id)
    wait_for(lambda: RunStore(path).count_steps() >= 1, timeout=60)
    first_point = time.time() - t0
    meta = RunStore(path).meta()
    assert meta["warm"] is True
    assert pool.warm_count(root) == 0  # no replacement boots while the run trains (cap 1)
    wait_for(lambda: runs.info(run_id).status == "finished", timeout=60)
    print(f"warm start to first stored step: {first_point:.2f} s")
    # the finishing worker started a replacement for the next run
    wait_for(lambda: pool.warm_count(root) == 1, timeout=30)
    for name in os.listdir(pool.pool_dir(root)):  # do not leave the replacement idling in the suite
        if name.split(".")[0].isdigit():
            try:
                os.kill(int(name.split(".")[0]), signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_queued_runs_start_from_a_warm_worker(runs_root, monkeypatch):
    """A sweep: the run queued behind a training one gets a warm worker booting (at the lowest
    priority) while the first trains, and starts warm when the slot frees."""
    from rlhf_core import pool

    monkeypatch.setenv("RLHF_EXPLORER_WARM_POOL", "1")
    root = runs.ensure_root()
    runs.top_up_pool(root, owner_pid=os.getpid())
    wait_for(lambda: any(n.endswith(".ready") for n in os.listdir(pool.pool_dir(root))), timeout=120)
    first = runs.submit(RunConfig.parse({**FAST, "steps": 12}))
    assert pool.warm_count(root) == 0  # nothing waits: no worker boots beside the training one
    second = runs.submit(RunConfig.parse(FAST))
    assert runs.info(second).status == "queued"
    assert pool.warm_count(root) == 1  # booting for the queued run
    wait_for(lambda: runs.info(second).status == "finished", timeout=240)
    assert RunStore(runs.run_dir(first)).meta()["warm"] is True
    assert RunStore(runs.run_dir(second)).meta()["warm"] is True
    wait_for(lambda: pool.warm_count(root) == 1, timeout=30)  # the finishing worker's replacement
    for name in os.listdir(pool.pool_dir(root)):  # do not leave it idling in the suite
        if name.split(".")[0].isdigit():
            try:
                os.kill(int(name.split(".")[0]), signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_bad_control_values_written_by_hand_are_rejected_as_events(tmp_path):
    """control.json is a plain file anyone can write; the worker applies RunConfig's rules to it."""
    import json as _json

    path = make_run(tmp_path, steps=3, kl_coef=0.05)
    with pytest.raises(ValueError, match="kl_coef must be ≥ 0"):
        write_control(path, kl_coef=-1)

    def progress(step, total, metrics):
        if step == 1:
            with open(os.path.join(path, "control.json"), "w") as f:
                _json.dump({"kl_coef": -1, "clip_range": "wide", "seq": 1}, f)

    assert run_worker(path, progress=progress, install_sigterm=False) == "finished"
    store = RunStore(path)
    rejected = {e["name"]: e["problem"] for e in store.events() if e["kind"] == "control_rejected"}
    assert "kl_coef must be ≥ 0" in rejected["kl_coef"] and "clip_range must be a number" in rejected["clip_range"]
    assert all(r["kl_coef"] == pytest.approx(0.05) for r in store.metrics_since(-1))


def test_trl_reloads_the_reference_model_only_from_safetensors(tmp_path):
    """GRPO's reference model is loaded by TRL itself; it gets our guarantees, not TRL's defaults:
    a policy folder that holds only a pickle (.bin) by then is refused, not unpickled."""
    import torch

    from rlhf_core import zoo
    from rlhf_core.algorithms import grpo
    from rlhf_core.algorithms.common import RolloutRecorder
    from rlhf_core.rewards import get_reward

    folder = tmp_path / "policy"
    model, tok = zoo.load_policy("imdb-tiny")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    policy, tok = zoo.load_policy(str(folder))
    assert zoo.reload_kwargs(str(folder)) == {"use_safetensors": True, "trust_remote_code": False,
                                              "local_files_only": True}
    os.remove(folder / "model.safetensors")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    cfg = RunConfig.parse({"policy": str(folder), "kl_coef": 0.05, "steps": 1, "device": "cpu"})
    recorder = RolloutRecorder(get_reward("vader"), tok, cfg.temperature)
    with pytest.raises((zoo.ZooError, OSError), match="safetensors|pickle"):
        grpo.build(cfg, policy, tok, recorder, ["This movie was"], str(tmp_path / "out"), "cpu", [])


def test_warm_workers_take_only_runs_that_need_nothing_from_the_hub(runs_root, monkeypatch):
    """A warm worker imported transformers offline before it knew its job: a hub run starts cold."""
    from rlhf_core import pool

    monkeypatch.setenv("RLHF_EXPLORER_WARM_POOL", "1")
    claims = []
    monkeypatch.setattr(pool, "claim", lambda root: claims.append(root))  # None: no warm worker
    monkeypatch.setattr(runs.subprocess, "Popen", lambda *a, **k: type("P", (), {"pid": os.getpid()})())
    for policy, expected_claims in (("gpt2", 0), ("imdb-tiny", 1)):
        path = runs.create_run(RunConfig.parse({"policy": policy}))
        runs.launch(path)
        assert len(claims) == expected_claims, policy


# ---- prompts that end at a word boundary ------------------------------------------------------------

@pytest.mark.parametrize("before,after,inside", [
    ("I'm a huge fan of Iv", "ade", True), ("First off I really enjoyed Zombi", "e's", True),
    ("I don", "'t", True), ("a well", "-made film", False), ("This movie was", " great", False),
    ("I loved it", ".", False), ('Who are these "They', '" really', False), ("", "x", False),
])
def test_continues_word(before, after, inside):
    assert continues_word(before, after) is inside


def assert_openings_end_words(openings: list[str], which: str) -> None:
    """Against the review text itself, not the tokenizer: each opening begins a review of the split,
    and the character after it in that review does not continue its last word."""
    from rlhf_core.zoo.data import imdb_reviews, split

    texts = [r.text for r in split(imdb_reviews())[0 if which == "train" else 1]]
    for opening in set(openings):
        rest = next((t[len(opening):] for t in texts if t.startswith(opening)), None)
        assert rest is not None, f"{opening!r} is not the opening of a {which} review"
        assert not continues_word(opening, rest), (opening, rest[:10])


@pytest.mark.parametrize("which", ["train", "eval"])
def test_review_openings_never_cut_a_word(which):
    tok = zoo.load_policy()[1]
    openings = [tok.decode(ids) for ids in review_openings(tok, 8, which, limit=200)]
    assert len(openings) == 200
    assert_openings_end_words(openings, which)
