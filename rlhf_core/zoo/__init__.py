"""The model zoo: embedded offline policies and reward models, plus hub ids and local folders.

Names a user can give for a policy:
- an embedded name (`imdb-tiny`, the default, or `imdb-tiny-sft-positive`);
- `smollm2-135m`, a real small LLM that runs offline once its optional package is installed
  (see smollm2.py);
- a local folder holding a transformers model saved as safetensors;
- a Hugging Face hub id such as `gpt2` or `lvwerra/gpt2-imdb` (needs the network, or the local cache).

Security: weights load only from safetensors and `trust_remote_code` is never enabled.
There is no silent fallback: a name that cannot be loaded is an error naming it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
from dataclasses import dataclass

from . import smollm2

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
DEFAULT_POLICY = "imdb-tiny"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?$")


class ZooError(ValueError):
    """A model name that cannot be resolved or loaded; the message is meant for the user."""


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # "policy" or "reward"
    description: str


EMBEDDED_POLICIES = {
    "imdb-tiny": ZooEntry("imdb-tiny", "policy",
                          "Tiny 4-layer GPT-2 (~1.4M params) pretrained on IMDB reviews; fast enough to feel live on a CPU."),
    "imdb-tiny-sft-positive": ZooEntry("imdb-tiny-sft-positive", "policy",
                                       "imdb-tiny fine-tuned on positive reviews only (SFT / behaviour cloning baseline)."),
}
EMBEDDED_REWARD_MODELS = ("learned-rm", "gold-rm")
KNOWN_HUB_POLICIES = ("gpt2", "distilgpt2", "lvwerra/gpt2-imdb", "HuggingFaceTB/SmolLM2-135M")


def policy_choices() -> list[dict]:
    """Every named policy a user can pick (embedded, the optional real LLM, known hub ids), with
    whether it is usable here and, if not, why: the CLI's `zoo --json` and the Policy list share it."""
    out = [{"name": e.name, "description": e.description, "needs_network": False, "available": True,
            **{k: v for k, v in asset_info(e.name).items() if k in ("params", "trained_on")}}
           for e in EMBEDDED_POLICIES.values()]
    why = smollm2.missing()
    out.append({"name": smollm2.NAME, "description": smollm2.DESCRIPTION, "needs_network": False,
                "available": why is None, **({"unavailable": why, "install": smollm2.INSTALL} if why else {})})
    out += [{"name": h, "description": "Hugging Face hub model", "needs_network": True, "available": True}
            for h in KNOWN_HUB_POLICIES]
    return out


def asset_dir(name: str) -> str:
    return os.path.join(ASSETS, name)


def asset_info(name: str) -> dict:
    """The build metadata (zoo.json) stored beside an embedded asset."""
    try:
        with open(os.path.join(asset_dir(name), "zoo.json")) as f:
            return json.load(f)
    except OSError:
        return {}


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP probe of the hub, so that offline users get an answer in seconds rather
    than after the HTTP client's retries."""
    if _offline_env():
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_local_folder(path: str, what: str) -> None:
    """A local model folder must hold a config and safetensors weights (never pickles)."""
    if not os.path.isdir(path):
        raise ZooError(f"{what} '{path}': not a folder")
    files = os.listdir(path)
    if "config.json" not in files:
        raise ZooError(f"{what} '{path}': not a model folder (no config.json)")
    if not any(f.endswith(".safetensors") for f in files):
        if any(f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl")) for f in files):
            raise ZooError(f"{what} '{path}': only pickle weights found; refusing to load them "
                           "(pickles can run code). Convert the model to safetensors.")
        raise ZooError(f"{what} '{path}': no .safetensors weights found")


def resolve(name: str, what: str = "policy", materialise: bool = True) -> tuple[str, bool]:
    """Map a user-facing name to (path-or-hub-id, is_hub). Raises ZooError with a clear message.

    `materialise=False` only checks the name: `smollm2-135m` is then not converted (a 20 s job
    for the worker, not for a page that is checking a form)."""
    if not isinstance(name, str) or not name.strip():
        raise ZooError(f"{what} name is empty")
    name = name.strip()
    embedded = EMBEDDED_POLICIES if what == "policy" else dict.fromkeys(EMBEDDED_REWARD_MODELS)
    if what == "policy" and name == smollm2.NAME:
        if not materialise:
            why = smollm2.missing()
            if why:
                raise ZooError(f"policy '{name}': {why}")
            return smollm2.cache_dir(), False
        try:
            return smollm2.ensure_converted(), False
        except smollm2.NotInstalled as e:
            raise ZooError(f"policy '{name}': {e}") from None
        except (OSError, ValueError, RuntimeError) as e:
            raise ZooError(f"policy '{name}': converting its GGUF weights to {smollm2.cache_dir()} "
                           f"failed ({type(e).__name__}: {e})") from None
    if name in embedded:
        path = asset_dir(name)
        check_local_folder(path, what)
        return path, False
    if os.path.sep in name and (os.path.exists(name) or name.startswith((".", os.path.sep, "~"))):
        path = os.path.abspath(os.path.expanduser(name))
        if not os.path.exists(path):
            raise ZooError(f"{what} '{name}': no such folder")
        check_local_folder(path, what)
        return path, False
    if os.path.isdir(name):
        check_local_folder(name, what)
        return os.path.abspath(name), False
    if not _HUB_ID.match(name):
        raise ZooError(f"unknown {what} '{name}': not an embedded name ({', '.join(embedded)}), "
                       "a local folder, or a valid hub id")
    return name, True


def hub_load_kwargs(name: str, what: str) -> dict:
    """Loading kwargs for a hub id; offline, only the local cache may serve it."""
    if hub_reachable():
        return {}
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - any cache problem means "not cached"
        cached = None
    if not isinstance(cached, str):
        raise ZooError(f"{what} '{name}': the Hugging Face hub is unreachable (offline?) and "
                       f"'{name}' is not in the local cache. Connect to the internet, or use "
                       + (f"the embedded policy '{DEFAULT_POLICY}'." if what == "policy"
                          else "an embedded reward such as 'vader' or 'learned-rm'."))
    return {"local_files_only": True}


def needs_hub(policy: str, reward: str) -> bool:
    """Whether a run with this policy and reward loads anything from the Hugging Face hub."""
    return resolve(policy, "policy")[1] or reward.startswith("hub:")


def reload_kwargs(name: str, what: str = "policy") -> dict:
    """from_pretrained keywords for a library that loads `name` again by itself (TRL's GRPO and RLOO
    reference model, PPO's value model): the guarantees of our own loads, not the library's
    defaults: safetensors only, no remote code, and only local files unless the hub is reachable."""
    path, is_hub = resolve(name, what)
    return {"use_safetensors": True, "trust_remote_code": False,
            **(hub_load_kwargs(path, what) if is_hub else {"local_files_only": True})}


def _load(name: str, what: str, model_cls_name: str, **model_kwargs):
    import transformers
    from transformers import AutoTokenizer

    path, is_hub = resolve(name, what)
    extra = hub_load_kwargs(path, what) if is_hub else {}
    model_cls = getattr(transformers, model_cls_name)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False, **extra)
        model = model_cls.from_pretrained(path, trust_remote_code=False, use_safetensors=True,
                                          **extra, **model_kwargs)
    except ZooError:
        raise
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ZooError(f"{what} '{name}': could not be loaded ({first})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ZooError(f"{what} '{name}': not a usable {model_cls_name} ({e})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    vocab = model.get_input_embeddings().num_embeddings
    if len(tok) > vocab:
        raise ZooError(f"{what} '{name}': tokenizer has {len(tok)} tokens but the model's "
                       f"embedding has only {vocab}; they do not belong together")
    return model, tok


def load_policy(name: str = DEFAULT_POLICY, dtype=None):
    """(causal LM in float32 unless `dtype`, left-padding tokenizer) for a policy name."""
    import torch

    model, tok = _load(name, "policy", "AutoModelForCausalLM", dtype=dtype or torch.float32)
    tok.padding_side = "left"
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def load_sequence_classifier(name: str, what: str = "reward model", dtype=None):
    import torch

    model, tok = _load(name, what, "AutoModelForSequenceClassification", dtype=dtype or torch.float32)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok

