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
EMBEDDED_REWARD_MODELS = ("learned-rm", "gold-rm", "gold-prime-rm")
# the policies a user picks by name that need no network (the real small LLM once installed)
OFFLINE_POLICIES = (*EMBEDDED_POLICIES, smollm2.NAME)
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
    """Loading kwargs for a hub id; offline, only the local cache may serve it. Every hub load
    and every preflight comes here first, so the size guard runs before any download."""
    if hub_reachable():
        check_hub_size(name, what)
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
    check_hub_size(name, what)
    return {"local_files_only": True}


@functools.lru_cache(maxsize=32)
def _hub_config(name: str) -> dict:
    """The hub model's config.json: a few kB, read before any weights are downloaded (from the
    local cache only when the hub is unreachable); once per process, though a run's policy,
    reference and value model each pass the size guard."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(name, "config.json", local_files_only=not hub_reachable())
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ZooError(f"'{name}': its config.json could not be read from the hub ({type(e).__name__}), "
                       "so its size is unknown") from None


def estimate_params(config: dict) -> int | None:
    """Parameters of a transformer from its config: embeddings plus, per layer, attention (4·d²,
    less with grouped-query attention) and the MLP (2·d·ff, or 3·d·ff when gated, times the
    experts of a mixture). None when the config lacks the width, depth or vocabulary (an
    architecture this cannot size)."""
    cfg = {**config.get("text_config", {}), **config} if "text_config" in config else config
    width = next((cfg[k] for k in ("hidden_size", "n_embd", "d_model", "dim") if isinstance(cfg.get(k), int)), None)
    depth = next((cfg[k] for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
                  if isinstance(cfg.get(k), int)), None)
    vocab = cfg.get("vocab_size")
    if not (width and depth and isinstance(vocab, int)):
        return None
    ff = next((cfg[k] for k in ("intermediate_size", "n_inner", "ffn_dim", "hidden_dim", "d_ff")
               if isinstance(cfg.get(k), int)), 4 * width)
    gated = str(cfg.get("hidden_act", cfg.get("activation_function", ""))).lower() in ("silu", "swiglu", "geglu")
    experts = next((cfg[k] for k in ("num_local_experts", "num_experts", "n_routed_experts")
                    if isinstance(cfg.get(k), int)), 1)
    heads, kv_heads = cfg.get("num_attention_heads"), cfg.get("num_key_value_heads")
    kv_share = kv_heads / heads if isinstance(heads, int) and isinstance(kv_heads, int) and heads else 1.0
    # query and output projections, and key and value ones shrunk by grouped-query attention
    attention = 2 * width * width + 2 * width * width * kv_share
    per_layer = int(attention) + (3 if gated else 2) * width * ff * experts
    embeddings = vocab * width * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return depth * per_layer + embeddings


def check_hub_size(name: str, what: str) -> None:
    """The hub guard: refuse a hub model larger than the operator's limit before downloading it.
    In hosted mode an allow-listed model is the operator's own choice and is not sized here."""
    from .. import hosting

    host = hosting.settings()
    if host.max_params == 0 or (host.hosted and hosting.allows_hub_model(name, host)):
        return
    params = estimate_params(_hub_config(name))
    if params is None:
        raise ZooError(f"{what} '{name}': its size cannot be read from its config.json, so it is refused "
                       f"(the limit is {host.max_params / 1e6:g}M parameters; {hosting.PREFIX}MAX_PARAMS=0 "
                       "lifts the check)")
    if params > host.max_params:
        raise ZooError(f"{what} '{name}' has about {params / 1e6:,.0f}M parameters, more than this "
                       f"server's limit of {host.max_params / 1e6:g}M ({hosting.PREFIX}MAX_PARAMS); it was "
                       "not downloaded")


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

