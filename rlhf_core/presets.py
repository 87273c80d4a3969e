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


SWEEPS_DIR = os.path.join(PRESETS_DIR, "sweeps")


@dataclass(frozen=True)
class Sweep:
    """A ready-made comparison: several runs from one base preset, each with its own overrides
    (presets/sweeps/*.yaml: title, description, base, runs)."""

    name: str
    title: str
    description: str
    configs: tuple[RunConfig, ...]
    path: str


def load_sweep(path: str, presets_folder: str = PRESETS_DIR) -> Sweep:
    """A sweep file; every problem is a ConfigError naming the file and the field."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read sweep file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise ConfigError(f"{path}: a sweep needs 'runs', a non-empty list of knob overrides")
    known = {p.name: p for p in list_presets(presets_folder)}
    base = data.get("base")
    if base not in known:
        raise ConfigError(f"{path}: base: no preset named {base!r} (known: {', '.join(known)})")
    configs = []
    for i, overrides in enumerate(data["runs"], 1):
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: runs item {i} must be a mapping of knob: value")
        try:
            configs.append(known[base].config.with_overrides(overrides))
        except ConfigError as e:
            raise ConfigError(f"{path}: runs item {i}: {e}") from None
    name = os.path.splitext(os.path.basename(path))[0]
    return Sweep(name, str(data.get("title", name)), str(data.get("description", "")).strip(), tuple(configs), path)


def list_sweeps(folder: str = SWEEPS_DIR) -> list[Sweep]:
    names = sorted(f for f in os.listdir(folder) if f.endswith((".yaml", ".yml"))) if os.path.isdir(folder) else []
    return [load_sweep(os.path.join(folder, name)) for name in names]


__all__ = ["Preset", "Sweep", "list_presets", "load_preset", "list_sweeps", "load_sweep", "DEFAULT_PRESET",
           "ConfigError"]
