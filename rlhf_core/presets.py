"""Presets: one YAML file each under presets/, shared by the UI and the CLI
(`python -m rlhf_core train presets/classic-grpo.yaml`)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import yaml

from .config import PRESET_KEY, ConfigError, RunConfig

PRESETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "presets")
DEFAULT_PRESET = "classic-grpo"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    needs_internet: bool
    config: RunConfig
    path: str


def load_preset(path: str) -> Preset:
    cfg = RunConfig.from_yaml(path)
    with open(path, encoding="utf-8") as f:
        meta = (yaml.safe_load(f) or {}).get(PRESET_KEY) or {}
    name = os.path.splitext(os.path.basename(path))[0]
    return Preset(name, str(meta.get("title", name)), str(meta.get("description", "")).strip(),
                  bool(meta.get("needs_internet", False)), cfg, path)


def list_presets(folder: str = PRESETS_DIR) -> list[Preset]:
    """All presets, the default first. A broken preset file is an error naming the file.
    Parsed files are reused until a file changes (the Playground lists them on every rerun)."""
    names = sorted(f for f in os.listdir(folder) if f.endswith((".yaml", ".yml")))
    stamp = tuple((f, os.stat(os.path.join(folder, f)).st_mtime_ns) for f in names)
    return list(_load_all(folder, stamp))


@functools.lru_cache(maxsize=4)
def _load_all(folder: str, stamp: tuple) -> tuple[Preset, ...]:
    presets = [load_preset(os.path.join(folder, name)) for name, _ in stamp]
    presets.sort(key=lambda p: (p.name != DEFAULT_PRESET, p.needs_internet, p.name))
    return tuple(presets)


__all__ = ["Preset", "list_presets", "load_preset", "DEFAULT_PRESET", "ConfigError"]
