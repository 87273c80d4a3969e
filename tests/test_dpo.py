"""DPO as the fourth algorithm: offline pairs made once, live beta, fresh-sample reward and KL on the
same axes as the online algorithms, the preset and the ready-made DPO vs GRPO sweep."""

import math

import pytest

from rlhf_core import runs
from rlhf_core.config import ConfigError, RunConfig
from rlhf_core.control import write_control
from rlhf_core.presets import PRESETS_DIR, list_sweeps, load_preset, load_sweep
from rlhf_core.store import RunStore
from rlhf_core.worker import run_worker

from .conftest import cli

SMALL = {"algorithm": "dpo", "steps": 3, "pairs": 16, "prompts_per_step": 4, "generations_per_prompt": 2,
         "response_length": 12, "learning_rate": 3e-4, "kl_coef": 0.1}


def make_run(tmp_path, name="run", **overrides):
    return runs.create_run(RunConfig.parse({**SMALL, **overrides}), path=str(tmp_path / name))


def test_dpo_config_checks_name_the_field():
    with pytest.raises(ConfigError, match=r"pairs \(4\) must be at least one step's batch"):
        RunConfig.parse({**SMALL, "pairs": 4})
    with pytest.raises(ConfigError, match="pair_source must be one of"):
        RunConfig.parse({**SMALL, "pair_source": "humans"})


@pytest.mark.slow
def test_dpo_preset_trains_from_the_cli_on_the_online_axes(tmp_path):
    """`python -m rlhf_core train presets/dpo.yaml` trains, and every step stores the unified reward
    and KL of fresh samples (what Runs & Compare overlays), plus DPO's own curves."""
    out = tmp_path / "dpo-run"
    r = cli("train", f"{PRESETS_DIR}/dpo.yaml", "--run-dir", str(out), "--quiet", "--set", "steps=3",
            "--set", "pairs=32")
    assert r.returncode == 0, r.stderr[-2000:]
    store = RunStore(str(out))
    rows = store.metrics_since(-1)
    assert [row["step"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert math.isfinite(row["reward"]) and math.isfinite(row["kl"])
        assert math.isfinite(row["policy_loss"]) and row["preference_accuracy"] is not None
        assert row["clip_range"] is None  # DPO has none; nothing pretends otherwise
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # step 1 samples the untouched policy
    assert rows[-1]["kl"] != pytest.approx(0.0, abs=1e-4)  # and the policy has moved since
    assert rows[0]["policy_loss"] == pytest.approx(math.log(2), abs=1e-3)  # -log sigmoid(0)
    assert len(store.samples(3)) == 16
    pairs = store.meta()["dpo_pairs"]
    assert pairs["count"] == 32 and pairs["source"] == "policy"
    for p in pairs["examples"]:  # the reward labelled them: chosen scored strictly higher
        assert p["chosen_reward"] > p["rejected_reward"]


@pytest.mark.slow
def test_dpo_reads_beta_live_and_refuses_a_clip_range(tmp_path):
    """A beta change lands as an event and in the stored knob; the trainer's loss uses the new
    value (the implicit reward margin is beta x the log-ratio gap, so 10x beta gives 10x the margin
    on the same batch); a clip range sent to a DPO run is rejected without ending the run."""
    import torch

    from rlhf_core.algorithms import dpo
    from rlhf_core.algorithms.common import RolloutRecorder
    from rlhf_core.prompts import prompt_texts
    from rlhf_core.rewards import get_reward
    from rlhf_core import zoo

    cfg = RunConfig.parse({**SMALL, "device": "cpu"})
    policy, tok = zoo.load_policy(cfg.policy)
    recorder = RolloutRecorder(get_reward("vader"), tok, 1.0)
    adapter = dpo.build(cfg, policy, tok, recorder, prompt_texts(tok, 8, "train", limit=64),
                        str(tmp_path / "trl"), "cpu", [])
    trainer = adapter.trainer
    with torch.no_grad():  # move the policy off the reference so the log-ratios are not 0
        policy.lm_head.weight.add_(0.05 * torch.randn_like(policy.lm_head.weight))
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.model.train()  # TRL files the metrics of a model in train mode under "train"
    margins = []
    for beta in (0.1, 1.0):
        adapter.set_kl_coef(beta)
        with torch.no_grad():
            trainer.compute_loss(trainer.model, batch)
        margins.append(trainer._metrics["train"]["rewards/margins"][-1])
    assert margins[0] != 0 and margins[1] == pytest.approx(10 * margins[0], rel=1e-3)

    path = make_run(tmp_path, "live")
    write_control(path, kl_coef=0.5, clip_range=0.3)  # read before the first step
    assert run_worker(path, install_sigterm=False) == "finished"
    store = RunStore(path)
    assert {r["kl_coef"] for r in store.metrics_since(-1)} == {0.5}
    kinds = {(e["kind"], e.get("name")) for e in store.events()}
    assert ("knob", "kl_coef") in kinds and ("control_rejected", "clip_range") in kinds


@pytest.mark.slow
def test_pairs_from_reviews_and_unlabelable_pairs(tmp_path):
    path = make_run(tmp_path, "reviews", pair_source="reviews", steps=2)
    assert run_worker(path, install_sigterm=False) == "finished"
    pairs = RunStore(path).meta()["dpo_pairs"]
    assert pairs["source"] == "reviews" and pairs["count"] == 16
    assert all("chosen_reward" not in p for p in pairs["examples"])  # star ratings labelled these

    # a reward that scores every sample alike cannot label pairs: the run fails, naming the knob
    path = make_run(tmp_path, "ties", reward="keyword:zqxj", steps=2)
    assert run_worker(path, install_sigterm=False) == "failed"
    message = RunStore(path).last_status()["message"]
    assert message.startswith("pairs: only 0 of 16 untied pairs") and "keyword:zqxj" in message


def test_preset_and_ready_made_sweep_load():
    preset = load_preset(f"{PRESETS_DIR}/dpo.yaml")
    assert preset.config.algorithm == "dpo"
    sweep = {s.name: s for s in list_sweeps()}["dpo-vs-grpo"]
    assert [c.algorithm for c in sweep.configs] == ["dpo", "grpo"]
    assert len({c.kl_coef for c in sweep.configs}) == 1  # compared at the same beta


@pytest.mark.parametrize("text,needle", [
    ("base: nope\nruns: [{}]\n", "base: no preset named 'nope'"),
    ("base: dpo\nruns: []\n", "needs 'runs'"),
    ("base: dpo\nruns: [{kl_coef: -1}]\n", "runs item 1: kl_coef must be ≥ 0.0"),
])
def test_broken_sweep_files_name_file_and_field(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_sweep(str(path))
    assert str(path) in str(e.value) and needle in str(e.value)
