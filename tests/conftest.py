import os
import sys
import tempfile

import pytest

# Tests never reach the hub: everything they load is embedded or built on the fly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
for _name in [k for k in os.environ if k.startswith("RLHF_EXPLORER_")]:  # the operator's settings
    os.environ.pop(_name)
os.environ["RLHF_EXPLORER_WARM_POOL"] = "0"  # tests that want the warm pool turn it on themselves
# trackio (an export target) writes to this folder, not to the user's ~/.cache
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="rlhf-test-trackio-")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("RLHF_EXPLORER_RUNS", str(root))
    return str(root)


def cli(*args, env=None, timeout=300):
    """Run `python -m rlhf_core ...` in a subprocess from the project root."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "rlhf_core", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
