"""Runs leave for TensorBoard and trackio, and are read back with those tools' own readers."""

import os

import pytest

from rlhf_core import runs
from rlhf_core.config import RunConfig
from rlhf_core.control import write_control
from rlhf_core.export import ExportError, to_tensorboard, to_trackio
from rlhf_core.store import RunStore
from rlhf_core.worker import run_worker

from .conftest import cli

FAST = {"steps": 3, "prompts_per_step": 2, "generations_per_prompt": 2, "response_length": 8}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 3-step run whose β was changed live after step 1, queued as part of a sweep."""
    path = runs.create_run(RunConfig.parse({**FAST, "loss_type": "dr_grpo"}),
                           path=str(tmp_path_factory.mktemp("export") / "run-a"))
    RunStore(path).set_meta(sweep="loss-sweep-20261207-120000")

    def progress(step, total, metrics):
        if step == 1:
            write_control(path, kl_coef=0.3)

    assert run_worker(path, progress=progress, install_sigterm=False) == "finished"
    return path


def test_tensorboard_export_reads_back_with_tensorboards_reader(finished_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "tb"
    r = cli("export", finished_run, "--tensorboard", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"tensorboard --logdir {out}" in r.stderr
    to_tensorboard(finished_run, str(out))  # a second export replaces the first
    folder = out / os.path.basename(finished_run)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    store = RunStore(finished_run)
    rows = store.metrics_since(-1)
    for key in ("reward", "kl", "objective", "entropy", "kl_coef", "clip_range", "response_length", "step_time"):
        points = acc.Scalars(key)
        assert [p.step for p in points] == [1, 2, 3], key
        assert [p.value for p in points] == pytest.approx([r[key] for r in rows], rel=1e-5), key
        assert [p.wall_time for p in points] == pytest.approx([r["ts"] for r in rows], abs=1e-3), key
    assert any(tag.startswith("trl/") for tag in acc.Tags()["scalars"])
    texts = {tag: acc.Tensors(tag) for tag in acc.Tags()["tensors"]}
    samples = texts["samples/text_summary"]
    assert [e.step for e in samples] == store.sample_steps()
    first = store.samples(samples[0].step)[0]
    assert first["completion"][:8].replace("|", "\\|") in samples[0].tensor_proto.string_val[0].decode()
    knob = texts["knob_changes/text_summary"]
    assert [e.step for e in knob] == [2] and "kl_coef" in knob[0].tensor_proto.string_val[0].decode()
    assert "loss_type: dr_grpo" in texts["config/text_summary"][0].tensor_proto.string_val[0].decode()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["loss_type"].string_value == "dr_grpo"
    assert hparams["kl_coef"].number_value == pytest.approx(0.05)  # the config; the change is a knob event


def test_export_needs_a_target_and_an_existing_run(tmp_path):
    r = cli("export", str(tmp_path / "nope"), "--tensorboard", str(tmp_path / "tb"))
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    r = cli("export", str(tmp_path))
    assert r.returncode == 2 and "--csv FILE, --tensorboard DIR or --trackio PROJECT" in r.stderr


def test_trackio_export_keeps_metrics_config_and_the_sweep_as_a_group(finished_run):
    pytest.importorskip("trackio", reason="trackio is an optional install (requirements-dev.txt has it)")
    import trackio  # its folder is a temporary one (conftest sets TRACKIO_DIR)
    import trackio.sqlite_storage

    run_id = to_trackio(finished_run, "rlhf-test")
    [tracked] = [r for r in trackio.Api().runs("rlhf-test") if r.name == run_id]
    assert tracked.config["loss_type"] == "dr_grpo"
    assert tracked.config["_Group"] == "loss-sweep-20261207-120000"
    logs = trackio.sqlite_storage.SQLiteStorage.get_logs("rlhf-test", run_id)
    rows = RunStore(finished_run).metrics_since(-1)
    assert [row["step"] for row in logs] == [1, 2, 3]
    assert [row["reward"] for row in logs] == pytest.approx([r["reward"] for r in rows])
    assert [row["kl_coef"] for row in logs] == pytest.approx([r["kl_coef"] for r in rows])
    with pytest.raises(ExportError, match="already in trackio project 'rlhf-test'"):
        to_trackio(finished_run, "rlhf-test")


def test_an_unwritable_tensorboard_folder_is_named(finished_run, tmp_path):
    blocker = tmp_path / "tb"
    blocker.write_text("a file where the folder should be")
    r = cli("export", finished_run, "--tensorboard", str(blocker))
    assert r.returncode == 2 and str(blocker) in r.stderr and "Traceback" not in r.stderr, r.stderr
