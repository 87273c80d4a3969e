"""Hosted mode's settings and input rules, the hub size guard and the run cleanup (no training)."""

import pytest

from rlhf_core import hosting, runs, zoo
from rlhf_core.config import ConfigError, RunConfig

GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
        "activation_function": "gelu_new"}
SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536,
           "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "hidden_act": "silu",
           "tie_word_embeddings": True}
LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 11008,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "hidden_act": "silu",
             "tie_word_embeddings": False}


@pytest.mark.parametrize("config,published", [(GPT2, 124.4e6), (SMOLLM2, 134.5e6), (LLAMA2_7B, 6738e6)])
def test_parameter_estimate_from_config_is_within_two_percent(config, published):
    assert abs(zoo.estimate_params(config) - published) / published < 0.02


@pytest.fixture
def online_hub(monkeypatch):
    """The hub reachable, with config.json answered from a table (nothing leaves this machine)."""
    configs = {"gpt2": GPT2, "meta-llama/Llama-2-7b-hf": LLAMA2_7B, "odd/model": {"model_type": "odd"}}
    fetched = []

    def fake_config(name):
        fetched.append(name)
        if name not in configs:
            raise zoo.ZooError(f"'{name}': its config.json could not be read from the hub")
        return configs[name]

    monkeypatch.setattr(zoo, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(zoo, "_hub_config", fake_config)
    return fetched


def test_hub_guard_refuses_a_large_model_before_any_download(online_hub, monkeypatch):
    runs.preflight(RunConfig.parse({"policy": "gpt2"}))  # 124M: under the default 500M
    with pytest.raises(zoo.ZooError, match=r"'meta-llama/Llama-2-7b-hf' has about 6,7\d\dM parameters.*500M"):
        runs.preflight(RunConfig.parse({"policy": "meta-llama/Llama-2-7b-hf"}))
    with pytest.raises(zoo.ZooError, match="about 6,7"):  # the worker's own load is guarded too
        zoo.load_policy("meta-llama/Llama-2-7b-hf")
    with pytest.raises(zoo.ZooError, match="size cannot be read"):
        runs.preflight(RunConfig.parse({"policy": "odd/model"}))
    monkeypatch.setenv("RLHF_EXPLORER_MAX_PARAMS", "100000000")
    with pytest.raises(zoo.ZooError, match="about 124M parameters.*100M"):
        runs.preflight(RunConfig.parse({"policy": "gpt2"}))
    with pytest.raises(zoo.ZooError, match="reward model 'meta-llama"):
        zoo.hub_load_kwargs("meta-llama/Llama-2-7b-hf", "reward model")
    monkeypatch.setenv("RLHF_EXPLORER_MAX_PARAMS", "0")  # no limit
    zoo.check_hub_size("meta-llama/Llama-2-7b-hf", "policy")
    assert online_hub and set(online_hub) <= {"gpt2", "meta-llama/Llama-2-7b-hf", "odd/model"}


@pytest.mark.parametrize("env,needle", [
    ({"RLHF_EXPLORER_HOSTED": "maybe"}, "RLHF_EXPLORER_HOSTED must be 1 or 0"),
    ({"RLHF_EXPLORER_RUNS_PER_VISITOR": "0"}, "RLHF_EXPLORER_RUNS_PER_VISITOR='0'"),
    ({"RLHF_EXPLORER_MAX_PARAMS": "lots"}, "RLHF_EXPLORER_MAX_PARAMS='lots'"),
    ({"RLHF_EXPLORER_KEEP_HOURS": "-1"}, "RLHF_EXPLORER_KEEP_HOURS"),
])
def test_bad_operator_settings_name_the_variable(env, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        hosting.from_env(env)


def test_hosted_mode_offers_only_the_zoo_and_the_allow_list(monkeypatch):
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "1")
    monkeypatch.setenv("RLHF_EXPLORER_ALLOW_POLICIES", "gpt2")
    monkeypatch.setenv("RLHF_EXPLORER_ALLOW_REWARDS", "hub:lvwerra/distilbert-imdb")
    monkeypatch.setenv("RLHF_EXPLORER_MAX_STEPS", "100")
    ok = [{"policy": "imdb-tiny"}, {"policy": "gpt2"}, {"reward": "hub:lvwerra/distilbert-imdb:POSITIVE"},
          {"reward": "keyword:great"}, {"steps": 100}, {"algorithm": "dpo", "pairs": 1024}]
    for values in ok:
        hosting.check_run_inputs(RunConfig.parse(values))
    refused = [({"policy": "lvwerra/gpt2-imdb"}, "policy: 'lvwerra/gpt2-imdb' is not offered"),
               ({"policy": "/etc"}, "policy: '/etc' is not offered"),
               ({"reward": "hub:some/huge-model"}, "reward: 'hub:some/huge-model' is not offered"),
               ({"reward": "hub:gpt2"}, "reward: 'hub:gpt2' is not offered"),
               ({"reward": "file:rewards/example.py:exclamations"}, "off on a hosted server"),
               ({"steps": 101}, "steps: 101 is more than this server allows per run"),
               ({"algorithm": "dpo", "pairs": 1025}, "pairs: 1025 is more than this server allows per run")]
    for values, needle in refused:
        with pytest.raises(ConfigError, match=needle):
            runs.preflight(RunConfig.parse(values))
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "0")
    hosting.check_run_inputs(RunConfig.parse({"policy": "lvwerra/gpt2-imdb", "steps": 5000}))


def _hosted(monkeypatch, per_visitor=2):
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "1")
    monkeypatch.setenv("RLHF_EXPLORER_RUNS_PER_VISITOR", str(per_visitor))


def _finished_run(seconds_per_step: float, steps: int = 10) -> str:
    """A finished run with `steps` stored steps that took `seconds_per_step` each (no training)."""
    import time

    from rlhf_core.store import RunStore

    path = runs.create_run(RunConfig.parse({"steps": steps}))
    store = RunStore(path)
    for step in range(steps):
        store.write_step(step, {"reward": 0.0, "kl": 0.0})
    now = time.time()
    store.set_meta(started=now - seconds_per_step * steps, ended=now)
    store.set_status("finished")
    return path


def test_visitors_control_only_their_own_runs(runs_root, monkeypatch):
    """Server-side, not only hidden buttons: B's stop, retune and delete of A's run are refused;
    A's own work (also after a reload: the same browser token gives the same tag)."""
    _hosted(monkeypatch)
    alice, bob = runs.owner_tag("a" * 32), runs.owner_tag("b" * 32)
    assert runs.owner_tag("a" * 32) == alice != bob  # a reload keeps the token, so the tag
    with pytest.raises(runs.RunError, match="malformed"):
        runs.owner_tag("not a token")
    run_id = runs.submit(RunConfig.parse({"steps": 5}), cap=0, owner=alice)  # cap 0: stays queued
    r = runs.info(run_id)
    assert r.owner == alice and runs.may_control(r, alice) and not runs.may_control(r, bob)
    assert not runs.may_control(r, None)
    for attempt in (lambda: runs.stop(run_id, owner=bob), lambda: runs.set_knobs(run_id, owner=bob, kl_coef=0.5),
                    lambda: runs.delete(run_id, owner=bob), lambda: runs.stop(run_id)):
        with pytest.raises(runs.RunError, match="started by another visitor"):
            attempt()
    assert runs.info(run_id).status == "queued"
    runs.set_knobs(run_id, owner=alice, kl_coef=0.5)
    assert runs.stop(run_id, owner=alice) == "stopped"
    runs.delete(run_id, owner=alice)
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "0")  # a private server: no owners, anyone may
    other = runs.submit(RunConfig.parse({"steps": 5}), cap=0)
    assert runs.stop(other) == "stopped"


def test_per_visitor_quota_and_queue_place(runs_root, monkeypatch):
    _hosted(monkeypatch, per_visitor=2)
    alice, bob = runs.owner_tag("a" * 32), runs.owner_tag("b" * 32)
    _finished_run(seconds_per_step=2.0, steps=10)
    first = runs.submit(RunConfig.parse({"steps": 30}), cap=0, owner=alice)
    second = runs.submit(RunConfig.parse({"steps": 30}), cap=0, owner=alice)
    with pytest.raises(runs.RunError, match="you have 2 runs queued or training and this server allows 2 per visitor"):
        runs.submit(RunConfig.parse({"steps": 30}), cap=0, owner=alice)
    with pytest.raises(runs.RunError, match="which browser"):
        runs.submit(RunConfig.parse({"steps": 30}), cap=0, owner=None)
    third = runs.submit(RunConfig.parse({"steps": 10}), cap=0, owner=bob)  # Bob has his own quota
    with pytest.raises(runs.RunError, match="allows 2 per visitor"):
        runs.check_quota(bob, adding=2)  # a sweep of two would go over: all or none
    assert runs.queue_place(first) == (1, 0.0)
    assert runs.queue_place(second) == (2, pytest.approx(60.0, rel=0.05))  # 30 steps at 2 s ahead of it
    assert runs.queue_place(third) == (3, pytest.approx(120.0, rel=0.05))
    runs.stop(first, owner=alice)  # withdrawn: everyone moves up, and Alice may queue again
    assert runs.queue_place(third)[0] == 2
    runs.submit(RunConfig.parse({"steps": 30}), cap=0, owner=alice)


def test_prune_removes_old_and_over_cap_ended_runs_only(runs_root, monkeypatch):
    import os
    import time

    from rlhf_core.store import RunStore

    old = _finished_run(1.0)
    RunStore(old).set_meta(ended=time.time() - 3 * 3600)
    recent = [_finished_run(1.0) for _ in range(3)]
    for i, path in enumerate(recent):
        RunStore(path).set_meta(ended=time.time() - 60 * (3 - i))  # recent[0] ended first
        with open(os.path.join(path, "padding.bin"), "wb") as f:
            f.write(b"\0" * 400_000)
    queued = runs.submit(RunConfig.parse({"steps": 5}), cap=0)
    RunStore(runs.run_dir(queued)).set_meta(created=time.time() - 10 * 3600)  # old, but waiting
    assert runs.prune() == []  # a private server keeps everything unless told otherwise
    monkeypatch.setenv("RLHF_EXPLORER_KEEP_HOURS", "2")
    monkeypatch.setenv("RLHF_EXPLORER_MAX_DISK_MB", "1.0")  # room for two of the three padded runs
    deleted = runs.prune()
    assert deleted[0] == os.path.basename(old) and deleted[1:] == [os.path.basename(recent[0])]
    assert {r.id for r in runs.list_runs()} == {os.path.basename(p) for p in recent[1:]} | {queued}
    assert runs.prune_now_and_then() == []  # pruned a moment ago: not again within the minute


def test_a_sessions_run_cache_is_bounded(runs_root, monkeypatch):
    import types

    from rlhf_core.store import RunStore
    from ui import common

    monkeypatch.setattr(common, "MAX_ROWS", 200)  # the same rule at a tenth of the scale (fewer writes)
    monkeypatch.setattr(common, "KEEP_RECENT", 100)
    path = runs.create_run(RunConfig.parse({"steps": 500}))
    store = RunStore(path)
    for step in range(400):
        store.write_step(step, {"reward": step / 500, "kl": 0.0})
    data = common.RunData(runs.os.path.basename(path))
    data.refresh()  # one long read, as when a session opens a long run
    for step in range(400, 500):  # then live refreshes, a step at a time
        store.write_step(step, {"reward": step / 500, "kl": 0.0})
        data.refresh()
    steps = [r["step"] for r in data.rows]
    assert len(steps) <= common.MAX_ROWS and steps[0] == 0 and steps[-1] == 499
    assert steps[-common.KEEP_RECENT:] == list(range(500 - common.KEEP_RECENT, 500))  # recent: every step
    assert steps == sorted(set(steps))
    fake_st = types.SimpleNamespace(session_state={})
    monkeypatch.setattr(common, "st", fake_st)
    ids = [runs.submit(RunConfig.parse({"steps": 5}), cap=0) for _ in range(common.MAX_RUNS_PER_SESSION + 2)]
    for run_id in ids:
        common.run_data(run_id)
    common.run_data(ids[0])  # used again: kept, while the least recently used go
    held = list(fake_st.session_state["_run_data"])
    assert len(held) == common.MAX_RUNS_PER_SESSION and held[-1] == ids[0] and ids[1] not in held


def test_a_shared_url_cannot_bring_in_what_a_hosted_server_refuses(runs_root, monkeypatch):
    import os

    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "1")
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60)
    at.query_params.update({"policy": "gpt2", "reward": "file:rewards/example.py:exclamations", "steps": "5000"})
    at.run()
    assert not at.exception
    warned = " ".join(w.value for w in at.warning)
    for needle in ("policy='gpt2' ignored", "reward='file:rewards/example.py:exclamations' ignored",
                   "steps='5000' ignored"):
        assert needle in warned, warned
    policy, reward = at.selectbox(key="knob_policy_choice"), at.selectbox(key="knob_reward_choice")
    assert policy.value == "imdb-tiny" and "other…" not in policy.options
    assert reward.value == "vader" and "other…" not in reward.options
    assert not any(o.startswith("hub:") for o in reward.options)

    # a lesson link is honoured, and hiding a knob does not let its refused value through
    lesson = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60)
    lesson.query_params.update({"policy": "gpt2", "hide": "policy,steps", "note": "Only press Start."})
    lesson.run()
    assert not lesson.exception
    assert "policy='gpt2' ignored" in " ".join(w.value for w in lesson.warning)
    assert not [w for w in lesson.selectbox if w.key == "knob_policy_choice"]
    assert any("Only press Start" in i.value for i in lesson.info)
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in lesson.query_params.items()}
    assert params["policy"] == "imdb-tiny" and params["hide"] == "policy,steps"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    import os
    import re

    from .conftest import ROOT

    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_installs_cpu_torch_and_keeps_runs_on_local_disk():
    """The Docker build cannot run here, so its install line is read: CPU-only torch from PyTorch's
    CPU index at requirements.txt's pin, before the README's install command, which then keeps it."""
    import os
    import shlex

    from .conftest import ROOT

    with open(os.path.join(ROOT, "requirements.txt")) as f:
        [torch_pin] = [line.strip() for line in f if line.startswith("torch==")]
    [install] = [args for kind, args in _dockerfile_instructions() if kind == "RUN" and "pip install" in args]
    commands = [shlex.split(c) for c in install.split("&&")]
    assert commands[0][:2] == ["pip", "install"] and torch_pin in commands[0]
    assert commands[0][commands[0].index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert commands[1][:2] == ["pip", "install"] and commands[1][-2:] == ["-r", "requirements.txt"]
    assert "--index-url" not in commands[1] and "--extra-index-url" not in commands[1]
    env = " ".join(args for kind, args in _dockerfile_instructions() if kind == "ENV")
    runs_folder = shlex.split(env.split("RLHF_EXPLORER_RUNS=", 1)[1])[0]
    assert runs_folder.startswith("/home/user/")  # the container's own disk, not a mounted bucket
