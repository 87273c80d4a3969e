"""Fault-injection suite: bad inputs and faults against the CLI, the engine and the app.

Every case states its expected outcome: a clear message naming the field or file, the right run
status, and nothing lost. docs/FAULTS.md lists the cases (F01...) with their outcomes.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from rlhf_core import runs, zoo
from rlhf_core.config import ConfigError, RunConfig
from rlhf_core.rewards import RewardError, get_reward
from rlhf_core.store import RunStore, check_integrity
from rlhf_core.worker import run_worker
from tests.conftest import ROOT, cli

FAST = {"steps": 3, "prompts_per_step": 2, "generations_per_prompt": 2, "response_length": 8}
NUMERIC = [name for name, f in RunConfig.model_fields.items() if f.annotation in (int, float)]


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


# ---- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), -float("inf"), 1e300])
def test_F01_every_numeric_knob_rejects_bad_values(name, bad):
    """Negative, NaN, inf and huge values: a ConfigError naming the knob, never a crash."""
    with pytest.raises(ConfigError) as e:
        RunConfig.parse({name: bad})
    assert str(e.value).startswith(name), str(e.value)


@pytest.mark.parametrize("name", ["learning_rate", "clip_range", "temperature", "steps", "prompts_per_step",
                                  "response_length", "update_epochs", "max_grad_norm", "cliprange_value"])
def test_F02_zero_where_zero_is_meaningless(name):
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        RunConfig.parse({name: 0})


@pytest.mark.parametrize("data,needle", [
    ({"steps": "ten"}, "steps must be a whole number, got 'ten'"),
    ({"kl_coef": [1, 2]}, "kl_coef must be a number"),
    ({"policy": 7}, "policy must be text"),
    ({"steps": True}, "steps must be a number, not true/false"),
    ({"steps": 2.5}, "steps must be a whole number"),
])
def test_F03_wrong_types(data, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        RunConfig.parse(data)


def test_F04_unknown_key_and_unknown_algorithm():
    with pytest.raises(ConfigError, match="kl_coeff: unknown config key"):
        RunConfig.parse({"kl_coeff": 0.1})
    with pytest.raises(ConfigError, match="algorithm must be one of 'ppo', 'grpo', 'rloo' or 'dpo', got 'dqn'"):
        RunConfig.parse({"algorithm": "dqn"})


def test_F05_empty_yaml_file(tmp_path):
    f = tmp_path / "empty.yaml"
    f.write_text("")
    r = cli("train", str(f))
    assert r.returncode == 2 and "empty.yaml: the file is empty" in r.stderr and "Traceback" not in r.stderr


def test_F06_yaml_python_tag_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.yaml"
    f.write_text(f"steps: !!python/object/apply:os.system ['touch {marker}']\n")
    r = cli("train", str(f))
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    assert not marker.exists()


def test_F07_yaml_alias_bomb_is_bounded(tmp_path):
    lines = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    lines.append("kl_coef: *i")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    t0 = time.time()
    r = cli("train", str(f), timeout=60)
    assert r.returncode == 2 and time.time() - t0 < 30
    assert len(r.stderr) < 2000  # the message does not expand the bomb


def test_F08_invalid_config_via_cli_names_field_one_line():
    r = cli("train", "presets/classic-grpo.yaml", "--set", "temperature=-3")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: temperature must be > 0.0, got -3"


# ---- models ------------------------------------------------------------------------------------------

def test_F09_unknown_hub_id_offline_is_one_clear_error_fast():
    t0 = time.time()
    with pytest.raises(zoo.ZooError, match="'someone/not-a-model'.*hub is unreachable"):
        zoo.load_policy("someone/not-a-model")
    assert time.time() - t0 < 5


def test_F10_local_path_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(zoo.ZooError, match="not a model folder"):
        zoo.load_policy(str(tmp_path))


def test_F11_pickle_only_weights_are_refused(tmp_path):
    import torch

    model, _ = zoo.load_policy("imdb-tiny")
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(zoo.ZooError, match="only pickle weights found; refusing"):
        zoo.load_policy(str(tmp_path))


def test_F12_remote_code_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    shutil.copytree(zoo.asset_dir("imdb-tiny"), tmp_path / "m")
    folder = tmp_path / "m"
    cfg = (folder / "config.json").read_text().replace('"model_type": "gpt2"', '"model_type": "evil"')
    cfg = cfg.rstrip().rstrip("}") + ', "auto_map": {"AutoModelForCausalLM": "evil.EvilModel", ' \
                                      '"AutoConfig": "evil.EvilConfig"}}'
    (folder / "config.json").write_text(cfg)
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(zoo.ZooError):
        zoo.load_policy(str(folder))
    assert not marker.exists()


def test_F13_tokenizer_and_model_vocabularies_disagree(tmp_path):
    from transformers import AutoModelForCausalLM, GPT2Config

    folder = tmp_path / "mismatch"
    shutil.copytree(zoo.asset_dir("imdb-tiny"), folder)
    AutoModelForCausalLM.from_config(GPT2Config(vocab_size=64, n_layer=1, n_embd=16, n_head=2)).save_pretrained(folder)
    with pytest.raises(zoo.ZooError, match="tokenizer has 4096 tokens but the model's embedding has only 64"):
        zoo.load_policy(str(folder))


# ---- rewards -----------------------------------------------------------------------------------------

def write_reward(tmp_path, body):
    f = tmp_path / "reward.py"
    f.write_text(body)
    return f"file:{f}:reward"


def test_F14_missing_reward_file(tmp_path):
    with pytest.raises(RewardError, match="reward file '.*nope.py' does not exist"):
        get_reward(f"file:{tmp_path}/nope.py:reward", allow_code=True)


def test_F15_reward_file_syntax_error(tmp_path):
    name = write_reward(tmp_path, "def reward(p, c)\n    return c\n")
    with pytest.raises(RewardError, match="reward.py' has a syntax error at line 1"):
        get_reward(name, allow_code=True)


@pytest.mark.parametrize("body,needle", [
    ("def reward(p, c):\n    raise KeyError('x')\n", "raised KeyError"),
    ("def reward(p, c):\n    return [0.0]\n", "returned 1 values for 3 texts"),
    ("def reward(p, c):\n    return ['good'] * len(c)\n", "returned a str at position 0; rewards must be numbers"),
    ("def reward(p, c):\n    return None\n", "must return a list of 3 numbers, got NoneType"),
])
def test_F16_reward_function_misbehaves(tmp_path, body, needle):
    reward = get_reward(write_reward(tmp_path, body), allow_code=True)
    with pytest.raises(RewardError, match=re.escape(needle)):
        reward(["a", "b", "c"])


def test_F17_reward_returning_nan_makes_the_run_diverged(tmp_path):
    name = write_reward(tmp_path, "def reward(p, c):\n    return [float('nan')] * len(c)\n")
    path = runs.create_run(RunConfig.parse({**FAST, "reward": name}), path=str(tmp_path / "run"))
    assert run_worker(path, allow_code=True, install_sigterm=False) == "diverged"
    assert "returned nan" in RunStore(path).last_status()["message"]


def test_F18_slow_reward_hits_the_documented_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_EXPLORER_REWARD_TIMEOUT", "0.5")
    reward = get_reward(write_reward(tmp_path, "import time\ndef reward(p, c):\n    time.sleep(10)\n"
                                               "    return [0.0] * len(c)\n"), allow_code=True)
    t0 = time.time()
    with pytest.raises(RewardError, match="did not return within 0.5 s.*RLHF_EXPLORER_REWARD_TIMEOUT"):
        reward(["a"])
    assert time.time() - t0 < 3


def test_F19_custom_reward_without_opt_in_is_refused_with_how_to(tmp_path):
    marker = tmp_path / "ran"
    name = write_reward(tmp_path, f"open({str(marker)!r}, 'w').write('x')\ndef reward(p, c):\n    return [0.0]*len(c)\n")
    with pytest.raises(RewardError, match=r"RLHF_EXPLORER_ALLOW_CODE=1 \(files in rewards/ only\) or the CLI flag --allow-code"):
        get_reward(name)
    r = cli("score", "--reward", name, "x")
    assert r.returncode == 2 and "--allow-code" in r.stderr
    assert not marker.exists()


# ---- runs --------------------------------------------------------------------------------------------

def long_run():
    return runs.submit(RunConfig.parse({**FAST, "steps": 5000}))


def test_F20_kill_9_mid_run_loses_no_committed_step(runs_root):
    run_id = long_run()
    path = runs.run_dir(run_id)
    wait_for(lambda: os.path.exists(os.path.join(path, "run.sqlite")) and RunStore(path).count_steps() >= 4)
    os.kill(RunStore(path).meta()["pid"], signal.SIGKILL)
    info = wait_for(lambda: (i := runs.info(run_id)).status == "crashed" and i)
    steps = [r["step"] for r in RunStore(path).metrics_since(-1)]
    assert steps == list(range(1, info.steps_done + 1)) and info.steps_done >= 4
    assert check_integrity(path) is None
    assert all(RunStore(path).samples(s) for s in steps)  # every committed step kept its samples too


def test_F21_sigterm_gives_stopped(runs_root):
    run_id = long_run()
    path = runs.run_dir(run_id)
    wait_for(lambda: RunStore(path).count_steps() >= 1)
    os.kill(RunStore(path).meta()["pid"], signal.SIGTERM)
    assert wait_for(lambda: (s := runs.info(run_id).status) in ("stopped", "crashed", "failed") and s) == "stopped"


def app_for(run_id=None):
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60)
    if run_id:
        at.query_params["run"] = run_id
    return at


def test_F22_server_restart_during_a_run_reattaches(runs_root, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_id = long_run()
    wait_for(lambda: RunStore(runs.run_dir(run_id)).count_steps() >= 2)
    first = app_for(run_id)
    first.run()
    del first  # the old server is gone; only the run store remains
    second = app_for(run_id)
    second.run()
    assert not second.exception
    assert second.get("vega_lite_chart") and any(f"Run {run_id}" in h.value for h in second.subheader)
    assert second.button(key=f"stop_{run_id}")  # still live and controllable
    runs.stop(run_id, wait=5)


def test_F23_two_tabs_stop_the_same_run(runs_root, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_id = long_run()
    wait_for(lambda: RunStore(runs.run_dir(run_id)).count_steps() >= 1)
    tabs = [app_for(run_id), app_for(run_id)]
    for tab in tabs:
        tab.run()
    for tab in tabs:
        tab.button(key=f"stop_{run_id}").click().run()
        assert not tab.exception and not tab.error
    assert wait_for(lambda: runs.info(run_id).status == "stopped", timeout=10)
    statuses = [h["status"] for h in RunStore(runs.run_dir(run_id)).status_history()]
    assert statuses.count("stopped") == 1


def test_F24_deleting_a_run_while_it_trains(runs_root, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_id = long_run()
    path = runs.run_dir(run_id)
    wait_for(lambda: RunStore(path).count_steps() >= 1)
    pid = RunStore(path).meta()["pid"]
    runs.delete(run_id)
    assert not os.path.exists(path)
    assert wait_for(lambda: not runs.alive(pid), timeout=10)
    at = app_for(run_id)
    at.run()
    assert not at.exception and any("not found" in e.value for e in at.error)


def test_F25_unwritable_runs_directory(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RLHF_EXPLORER_RUNS", str(blocker / "runs"))
    with pytest.raises(runs.RunError, match="runs folder .*a-file/runs cannot be created.*RLHF_EXPLORER_RUNS"):
        runs.submit(RunConfig.parse(FAST))
    monkeypatch.chdir(ROOT)
    at = app_for()
    at.run()
    at.button(key="start").click().run()
    assert not at.exception and any("cannot be created" in e.value for e in at.error)


def test_F26_full_disk_is_reported_and_committed_steps_survive(tmp_path):
    """RLIMIT_FSIZE makes the run store's writes fail like a full disk would."""
    path = runs.create_run(RunConfig.parse({**FAST, "steps": 5000}), path=str(tmp_path / "full"))
    size = os.path.getsize(os.path.join(path, "run.sqlite")) + 64 * 1024

    def limit():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    with open(os.path.join(path, "worker.log"), "wb") as log:
        proc = subprocess.run([sys.executable, "-m", "rlhf_core.worker", path], cwd=ROOT, preexec_fn=limit,
                              stdout=log, stderr=subprocess.STDOUT, timeout=300,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode != 0
    info = runs.info_at(path)
    assert info.status in ("failed", "crashed")
    assert "disk is full" in (info.error or "") or "full" in (info.error or "")
    rows = RunStore(path).metrics_since(-1)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))


def test_F27_corrupt_store_is_reported_and_others_unaffected(runs_root, monkeypatch):
    good = runs.create_run(RunConfig.parse(FAST))
    assert run_worker(good, install_sigterm=False) == "finished"
    bad = runs.create_run(RunConfig.parse(FAST))
    with open(os.path.join(bad, "run.sqlite"), "wb") as f:
        f.write(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(os.path.join(bad, "run.sqlite" + suffix)):
            os.unlink(os.path.join(bad, "run.sqlite" + suffix))
    listed = {r.id: r for r in runs.list_runs()}
    assert listed[os.path.basename(good)].status == "finished"
    assert "unreadable" in listed[os.path.basename(bad)].error
    monkeypatch.chdir(ROOT)
    at = app_for()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    at.multiselect(key="compare_selection").set_value([os.path.basename(good), os.path.basename(bad)]).run()
    assert not at.exception
    at2 = app_for(os.path.basename(bad))
    at2.run()
    assert not at2.exception and any("cannot be read" in e.value or "unreadable" in e.value for e in at2.error)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "..", "%2e%2e", "a/b", "<script>", "x" * 500, " "])
def test_F28_run_param_traversal_or_garbage(runs_root, monkeypatch, bad):
    monkeypatch.chdir(ROOT)
    at = app_for(bad)
    at.run()
    assert not at.exception and at.error
    assert all("Traceback" not in e.value for e in at.error)


def test_F29_concurrency_cap_queues_not_crashes(runs_root):
    ids = [runs.submit(RunConfig.parse({**FAST, "steps": 2}), cap=1) for _ in range(3)]
    statuses = [runs.info(i).status for i in ids]
    assert statuses.count("queued") >= 2
    assert wait_for(lambda: all(runs.info(i).status == "finished" for i in ids), timeout=240)


# ---- server ------------------------------------------------------------------------------------------

def test_F30_server_binds_loopback_by_default():
    import tomllib

    with open(os.path.join(ROOT, ".streamlit", "config.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["browser"]["gatherUsageStats"] is False
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "Host it for a class" in readme and "0.0.0.0" in readme


def test_F31_no_ui_path_executes_text(runs_root, monkeypatch, tmp_path):
    """Static: no eval/exec/pickle/unsafe YAML anywhere in the UI or core. Dynamic: code-shaped text
    typed into the policy and reward fields is only ever treated as a name."""
    pattern = re.compile(r"(?<![.\w])(eval|exec)\(|pickle\.load|yaml\.load\(|yaml\.unsafe_load|trust_remote_code=True"
                         r"|subprocess\.[a-z]+\([^)]*shell=True")
    for folder in ("pages", "ui", "rlhf_core"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py"):
                    text = open(os.path.join(dirpath, name)).read()
                    assert not pattern.search(text), f"{name}: {pattern.search(text).group(0)}"
    monkeypatch.chdir(ROOT)
    marker = tmp_path / "pwned"
    at = app_for()
    at.run()
    at.selectbox(key="knob_policy_choice").set_value("other…").run()
    at.text_input(key="knob_policy_custom").input(f"__import__('os').system('touch {marker}')").run()
    at.button(key="start").click().run()
    assert not at.exception and any("policy" in e.value for e in at.error)
    at.selectbox(key="knob_policy_choice").set_value("imdb-tiny").run()
    at.selectbox(key="knob_reward_choice").set_value("other…").run()
    code = tmp_path / "r.py"
    code.write_text(f"open({str(marker)!r}, 'w')\ndef reward(p, c):\n    return [0.0]*len(c)\n")
    at.text_input(key="knob_reward_custom").input(f"file:{code}:reward").run()
    at.button(key="start").click().run()
    assert not at.exception and any("RLHF_EXPLORER_ALLOW_CODE=1" in e.value for e in at.error)
    assert not marker.exists() and not runs.list_runs()
