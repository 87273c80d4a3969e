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
    monkeypatch.setenv("RLHF_EXPLORER_ALLOW_MODELS", "gpt2, lvwerra/distilbert-imdb")
    monkeypatch.setenv("RLHF_EXPLORER_MAX_STEPS", "100")
    ok = [{"policy": "imdb-tiny"}, {"policy": "gpt2"}, {"reward": "hub:lvwerra/distilbert-imdb:POSITIVE"},
          {"reward": "keyword:great"}, {"steps": 100}]
    for values in ok:
        hosting.check_run_inputs(RunConfig.parse(values))
    refused = [({"policy": "lvwerra/gpt2-imdb"}, "policy: 'lvwerra/gpt2-imdb' is not offered"),
               ({"policy": "/etc"}, "policy: '/etc' is not offered"),
               ({"reward": "hub:some/huge-model"}, "reward: 'hub:some/huge-model' is not offered"),
               ({"reward": "file:rewards/example.py:exclamations"}, "off on a hosted server"),
               ({"steps": 101}, "steps: 101 is more than this server allows per run")]
    for values, needle in refused:
        with pytest.raises(ConfigError, match=needle):
            runs.preflight(RunConfig.parse(values))
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "0")
    hosting.check_run_inputs(RunConfig.parse({"policy": "lvwerra/gpt2-imdb", "steps": 5000}))
