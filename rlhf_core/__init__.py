"""RLHF Explorer's core: runs over TRL in worker processes, a run store, the model zoo and the labs.

For notebooks and scripts, the Python API (rlhf_core/api.py) is importable from here:
`rlhf_core.start`, `Run`, `open_run`, `list_runs`, `sweep`, `compare` and `frontier`.
They are loaded on first use, so that a worker importing `rlhf_core.worker` pays nothing for them.
"""

_API = ("start", "Run", "open_run", "list_runs", "sweep", "compare", "frontier")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlhf_core' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
