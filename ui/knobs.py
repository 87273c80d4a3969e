"""The Playground's knob panel: presets, every RunConfig knob with RLHF-flavoured help, and the
round trip of the current settings through the URL's query parameters (shareable configs)."""

from __future__ import annotations

import re
import typing
from urllib.parse import urlencode

import streamlit as st

from rlhf_core import hosting, zoo
from rlhf_core.config import ConfigError, RunConfig
from rlhf_core.presets import list_presets
from rlhf_core.rewards import STATIC_SPECS

KL_CHOICES = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
CLIP_CHOICES = [0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 10.0, 100.0]
LR_CHOICES = [1e-5, 3e-5, 1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]
REWARD_CHOICES = ["vader", "learned-rm", "gold-rm", "length", "keyword:great", "hub:lvwerra/distilbert-imdb"]
CUSTOM = "other…"
ALGORITHMS = list(typing.get_args(RunConfig.model_fields["algorithm"].annotation))
PAIR_SOURCES = list(typing.get_args(RunConfig.model_fields["pair_source"].annotation))
LOSS_TYPES = list(typing.get_args(RunConfig.model_fields["loss_type"].annotation))
SCALE_REWARDS = list(typing.get_args(RunConfig.model_fields["scale_rewards"].annotation))
LESSON_NOTE_MAX = 500  # characters: one or two sentences above Start
# the characters that Markdown (and Streamlit's :icon: and $math$) would read: escaped in a lesson note
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~:$])")
# knobs shared through the URL; the rest stay at their preset values
URL_KNOBS = ("algorithm", "policy", "reward", "kl_coef", "clip_range", "learning_rate", "steps",
             "prompts_per_step", "generations_per_prompt", "response_length", "temperature",
             "update_epochs", "seed", "loss_type", "scale_rewards", "pairs", "pair_source", "sample_every")
HIDEABLE = ("preset",) + URL_KNOBS  # what a lesson link may hide: the preset picker and every URL knob

HELP = {
    "algorithm": "GRPO compares each completion with the others for the same prompt (no value network). "
                 "RLOO does the same with a leave-one-out baseline. PPO learns a value head and gives "
                 "per-token advantages (GAE). DPO is offline: it learns from preference pairs labelled once "
                 "at the start and never samples to learn (its reward and KL come from fresh samples drawn "
                 "only to watch it).",
    "policy": "The language model being trained. imdb-tiny is embedded and fast; smollm2-135m is a real "
              "small LLM that writes fluent English but takes seconds a step; hub ids need internet.",
    "reward": "What the policy is paid for. VADER scores sentiment; the reward models are learned "
              "from preferences (proxy vs gold).",
    "kl_coef": "β, the leash: the penalty per nat of KL from the reference model. 0 lets the policy "
               "wander off and reward-hack; large values keep it where it started.",
    "clip_range": "ε, PPO's trust region: how far the probability ratio may move before its gradient "
                  "is clipped. Only matters when update_epochs > 1; with one pass the ratio is exactly 1.",
    "learning_rate": "Step size of the optimizer. Tiny models like 1e-4 to 1e-3; too high and the run "
                     "collapses or diverges.",
    "prompts_per_step": "Distinct review openings sampled per step.",
    "generations_per_prompt": "Completions per prompt. GRPO and RLOO need ≥ 2: they judge each completion "
                              "against its siblings.",
    "response_length": "Maximum tokens the policy may add. Longer completions make the reward sparser "
                       "per token (credit assignment gets harder).",
    "temperature": "Sampling temperature. Lower means greedier text and less exploration.",
    "update_epochs": "Optimisation passes over each batch of samples. More passes reuse data (cheaper) "
                     "but make it staler, which is what clipping guards against.",
    "steps": "Number of RL steps: each samples a fresh batch and updates the policy.",
    "seed": "Random seed; the same seed and knobs reproduce a run.",
    "pairs": "DPO's offline data: how many preference pairs are made once, at the start.",
    "pair_source": "policy: two samples per prompt from the starting policy, the reward's favourite is "
                   "'chosen'. reviews: a positive review's ending is chosen over a negative one's (IMDB's "
                   "star ratings label them; the reward only scores the fresh samples).",
    "sample_every": "DPO draws fresh samples every this many steps, only to draw the reward and KL curves.",
}


def _named_policies() -> dict[str, dict]:
    """The policies offered by name (embedded and the optional real LLM, and on a hosted server
    the operator's allow-list), with their availability."""
    named = {p["name"]: p for p in zoo.policy_choices() if not p["needs_network"]}
    host = hosting.settings()
    if host.hosted:
        named.update({name: {"name": name} for name in host.allow_policies})
    return named


def _reward_choices() -> list[str]:
    """The Reward list: on a hosted server only the embedded rewards and the operator's
    allow-list, with no free-text field (no hub: or file: names)."""
    host = hosting.settings()
    if not host.hosted:
        return REWARD_CHOICES + [CUSTOM]
    return [r for r in REWARD_CHOICES if not r.startswith("hub:")] + list(host.allow_rewards)


def _policy_label(name: str, named: dict[str, dict]) -> str:
    entry = named.get(name)
    return f"{name}  ({entry['unavailable']})" if entry and entry.get("unavailable") else name


def _state_key(name: str) -> str:
    return f"knob_{name}"


def _apply_config(cfg: RunConfig) -> None:
    """Put a config's values into the widgets (through their session-state keys)."""
    values = cfg.model_dump()
    for name in URL_KNOBS:
        st.session_state[_state_key(name)] = values[name]
    policy, reward = values["policy"], values["reward"]
    named = policy in _named_policies()
    st.session_state["knob_policy_choice"] = policy if named else CUSTOM
    st.session_state["knob_policy_custom"] = "" if named else policy
    listed = reward in _reward_choices()
    st.session_state["knob_reward_choice"] = reward if listed else CUSTOM
    st.session_state["knob_reward_custom"] = "" if listed else reward
    st.session_state["_base_config"] = values


def offered_presets() -> list:
    """The presets this server offers: all of them, or on a hosted server those whose inputs it allows."""
    out = []
    for preset in list_presets():
        try:
            hosting.check_run_inputs(preset.config)
        except ConfigError:
            continue
        out.append(preset)
    return out


def _on_preset_change() -> None:
    presets = {p.name: p for p in offered_presets()}
    chosen = presets.get(st.session_state.get("preset"))
    if chosen is not None:
        _apply_config(chosen.config)


def _with_default_label(knob: str, value: str) -> str:
    """'dapo (TRL's default)': the choice a run gets when nobody picks one says whose default it is."""
    return f"{value} (TRL's default)" if value == RunConfig.model_fields[knob].default else value


def _nearest(value, choices):
    return min(choices, key=lambda c: abs(c - value))


def init_from_url() -> list[str]:
    """On a session's first run, seed the knobs from the preset, then from ?knob=value params.
    Returns warnings for parameters that could not be used (they are ignored, not guessed)."""
    seeded = all(_state_key(name) in st.session_state for name in URL_KNOBS)
    if "_knobs_ready" in st.session_state and seeded:
        return []
    # (again if a rerun interrupted the first run before its widgets took these values: Streamlit
    # then drops them, and the knobs would silently show their minimums)
    st.session_state["_knobs_ready"] = True
    presets = offered_presets()
    by_name = {p.name: p for p in presets}
    preset = st.query_params.get("preset")
    warnings = []
    if preset is not None and preset not in by_name:
        warnings.append(f"URL parameter preset={preset!r} ignored: this server offers no such preset "
                        f"(offered: {', '.join(by_name)}); showing {presets[0].name}")
    if preset not in by_name:
        preset = presets[0].name
    st.session_state["preset"] = preset
    base = by_name[preset].config
    overrides = {}
    for name in URL_KNOBS:
        raw = st.query_params.get(name)
        if raw is None:
            continue
        try:
            parsed = RunConfig.parse({**base.model_dump(), name: _coerce(name, raw)})
            hosting.check_run_inputs(parsed)  # a shared link cannot bring in what a hosted server refuses
            overrides[name] = parsed.model_dump()[name]
        except (ConfigError, ValueError) as e:
            warnings.append(f"URL parameter {name}={raw!r} ignored: {e}")
    cfg = base.with_overrides(overrides) if overrides else base
    _apply_config(cfg)
    # the select-sliders hold a fixed set of values; snap URL values onto it
    st.session_state[_state_key("kl_coef")] = _nearest(cfg.kl_coef, KL_CHOICES)
    st.session_state[_state_key("clip_range")] = _nearest(cfg.clip_range, CLIP_CHOICES)
    st.session_state[_state_key("learning_rate")] = _nearest(cfg.learning_rate, LR_CHOICES)
    return warnings


def lesson_from_url() -> tuple[frozenset[str], str | None, list[str]]:
    """A teacher's link: ?hide=clip_range,learning_rate hides those knobs (they keep the link's or
    the preset's values) and ?note=... puts one sentence above Start. Returns (hidden knobs, note,
    warnings for what could not be used). Display only: what a run may do is still checked at Start
    (and on a hosted server by its own rules), whatever the page hides."""
    warnings = []
    hidden = set()
    for name in (n.strip() for n in st.query_params.get("hide", "").split(",")):
        if name in HIDEABLE:
            hidden.add(name)
        elif name:
            warnings.append(f"URL parameter hide: {name!r} is not a knob (hideable: {', '.join(HIDEABLE)})")
    note = st.query_params.get("note", "").strip() or None
    if note and len(note) > LESSON_NOTE_MAX:
        warnings.append(f"URL parameter note is {len(note)} characters long (at most {LESSON_NOTE_MAX}); "
                        "not shown")
        note = None
    return frozenset(hidden), note, warnings


def lesson_note(note: str) -> None:
    """The teacher's sentence, shown as plain text: a link's text never becomes markup or links."""
    st.info(_MARKDOWN_SPECIAL.sub(r"\\\1", note), icon=":material/school:")


def lesson_link(values: dict, hide: list[str], note: str) -> str:
    """The address of this Playground with the current knobs, the preset, and the lesson's hidden
    knobs and note, ready to hand to a class."""
    params = _knob_params(values)
    if hide:
        params["hide"] = ",".join(hide)
    if note.strip():
        params["note"] = note.strip()
    page = (st.context.url or "").split("?", 1)[0]
    return f"{page}?{urlencode(params)}"


def lesson_link_builder(values: dict, hidden: frozenset[str]) -> None:
    """'Copy a lesson link': pick knobs to hide and a sentence; the link appears with a copy button."""
    with st.expander("Copy a lesson link"):
        st.caption("For a class: a link that opens the Playground on these settings, with the knobs you "
                   "pick hidden and your sentence above Start. Hidden knobs keep their values. It changes "
                   "nothing a server enforces: a hosted server checks every run at Start as always.")
        hide = st.multiselect("Hide these knobs", HIDEABLE, default=sorted(hidden), key="lesson_hide")
        note = st.text_input("One sentence for the students", key="lesson_note", max_chars=LESSON_NOTE_MAX,
                             placeholder="e.g. Set β to 0, press Start, and watch what happens to KL.")
        st.code(lesson_link(values, hide, note), language=None, wrap_lines=True)
        st.caption("Copy it with the icon at the right of the link.")


def _coerce(name: str, raw: str):
    field = RunConfig.model_fields[name]
    if field.annotation is int:
        return int(raw)
    if field.annotation is float:
        return float(raw)
    return raw


def preset_picker(hidden: frozenset[str] = frozenset()) -> None:
    """The preset and a one-line description: with Start beneath them, the first screen of the
    Playground (everything else may fold away). A lesson that hides the preset shows its title."""
    presets = offered_presets()
    if "preset" in hidden:
        current = {p.name: p for p in presets}[st.session_state["preset"]]
        st.markdown(f"**{current.title}**", help=current.description)
        return
    named = _named_policies()
    titles = {p.name: p.title + ("  (needs internet)" if p.needs_internet else "")
              + ("  (not installed)" if named.get(p.config.policy, {}).get("unavailable") else "")
              for p in presets}
    st.selectbox("Preset", [p.name for p in presets], key="preset", format_func=titles.get,
                 on_change=_on_preset_change, help="Start from a curated setting; every knob stays editable.")
    current = {p.name: p for p in presets}[st.session_state["preset"]]
    first_sentence = current.description.split(". ")[0].rstrip(".") + "."
    st.caption(first_sentence, help=current.description)


def knob_panel(hidden: frozenset[str] = frozenset()) -> dict:
    """Draw the knobs (the essential ones open, the rest folded), leaving out those a lesson link
    hides; return their values as a dict (not yet validated). A hidden knob keeps the value the
    preset and the link gave it."""
    base = dict(st.session_state.get("_base_config") or {})

    def shown(name: str, where=st):
        """Where the knob's widget goes, or a stand-in that draws nothing when the lesson hides it."""
        return _NOT_DRAWN if name in hidden else where

    named = _named_policies()
    shown("algorithm").radio("Algorithm", ALGORITHMS, key=_state_key("algorithm"), horizontal=True,
                             format_func=str.upper, help=HELP["algorithm"])
    algorithm = base.get("algorithm") if "algorithm" in hidden else st.session_state[_state_key("algorithm")]
    dpo, grpo = algorithm == "dpo", algorithm == "grpo"
    free_text = not hosting.hosted()  # a hosted server offers no free-text ids, folders or code
    policy = base.get("policy")
    if "policy" not in hidden:
        policy = st.selectbox("Policy", list(named) + ([CUSTOM] if free_text else []), key="knob_policy_choice",
                              format_func=lambda name: _policy_label(name, named), help=HELP["policy"])
        if policy == CUSTOM:
            policy = st.text_input("Hub id or local folder", key="knob_policy_custom",
                                   placeholder="e.g. gpt2, lvwerra/gpt2-imdb or ./my-model").strip()
    reward = base.get("reward", "")
    if "reward" not in hidden:
        reward = st.selectbox("Reward", _reward_choices(), key="knob_reward_choice", help=HELP["reward"])
        if reward == CUSTOM:
            reward = st.text_input("Reward name", key="knob_reward_custom",
                                   placeholder="keyword:<word>, length:30, hub:<id>, file:rewards/<file>.py:<function>").strip()
        spec = STATIC_SPECS.get(reward.split(":")[0])
        if spec:
            st.caption(spec.description + (" Needs internet." if spec.needs_network else ""))

    shown("kl_coef").select_slider("kl_coef (β)", KL_CHOICES, key=_state_key("kl_coef"), help=HELP["kl_coef"])
    with st.expander("More knobs: ε, learning rate, batch, length, steps, seed; GRPO's loss; DPO's pairs"):
        # every widget is drawn for every algorithm (disabled where it does not apply): a widget left
        # out of a rerun loses its value in Streamlit
        shown("clip_range").select_slider("clip_range (ε)", CLIP_CHOICES, key=_state_key("clip_range"), disabled=dpo,
                                          help=HELP["clip_range"] + (" DPO has no clip range." if dpo else ""))
        shown("learning_rate").select_slider("learning_rate", LR_CHOICES, key=_state_key("learning_rate"),
                                             format_func=lambda v: f"{v:g}", help=HELP["learning_rate"])
        c1, c2 = st.columns(2)
        shown("prompts_per_step", c1).number_input("prompts / step", 1, 256, key=_state_key("prompts_per_step"),
                                                   help=HELP["prompts_per_step"])
        shown("generations_per_prompt", c2).number_input("generations / prompt", 1, 32,
                                                         key=_state_key("generations_per_prompt"),
                                                         help=HELP["generations_per_prompt"])
        shown("response_length", c1).number_input("response length", 1, 256, key=_state_key("response_length"),
                                                  help=HELP["response_length"])
        shown("update_epochs", c2).number_input("update epochs", 1, 16, key=_state_key("update_epochs"),
                                                help=HELP["update_epochs"])
        shown("temperature").slider("temperature", 0.1, 2.0, key=_state_key("temperature"), step=0.1,
                                    help=HELP["temperature"])
        c1, c2 = st.columns(2)
        shown("steps", c1).number_input("steps", 1, 100_000, key=_state_key("steps"), help=HELP["steps"])
        shown("seed", c2).number_input("seed", 0, 2**31 - 1, key=_state_key("seed"), help=HELP["seed"])
        c1, c2 = st.columns(2)
        shown("loss_type", c1).selectbox("GRPO loss", LOSS_TYPES, key=_state_key("loss_type"), disabled=not grpo,
                                         format_func=lambda v: _with_default_label("loss_type", v),
                                         help=RunConfig.model_fields["loss_type"].description)
        shown("scale_rewards", c2).selectbox("GRPO reward scaling", SCALE_REWARDS, key=_state_key("scale_rewards"),
                                             disabled=not grpo,
                                             format_func=lambda v: _with_default_label("scale_rewards", v),
                                             help=RunConfig.model_fields["scale_rewards"].description)
        c1, c2, c3 = st.columns(3)
        shown("pairs", c1).number_input("DPO pairs", 2, 100_000, key=_state_key("pairs"), disabled=not dpo,
                                        help=HELP["pairs"])
        shown("pair_source", c2).selectbox("DPO pair source", PAIR_SOURCES, key=_state_key("pair_source"),
                                           disabled=not dpo, help=HELP["pair_source"])
        shown("sample_every", c3).number_input("DPO samples every", 1, 10_000, key=_state_key("sample_every"),
                                               disabled=not dpo, help=HELP["sample_every"])

    values = {name: base[name] if name in hidden else st.session_state[_state_key(name)]
              for name in URL_KNOBS if name not in ("policy", "reward")}
    if not grpo:  # GRPO's loss knobs mean nothing to another trainer, and RunConfig refuses them there
        values.update({knob: RunConfig.model_fields[knob].default for knob in ("loss_type", "scale_rewards")})
    values.update(policy=policy, reward=reward)
    base.update(values)
    return base


class _NotDrawn:
    """Stands in for a Streamlit container when a lesson hides a knob: every widget call draws nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


_NOT_DRAWN = _NotDrawn()


def _knob_params(values: dict) -> dict[str, str]:
    params = {"preset": st.session_state.get("preset", "")}
    for name in URL_KNOBS:
        v = values.get(name)
        if v is not None:
            params[name] = f"{v:g}" if isinstance(v, float) else str(v)
    return params


def sync_url(values: dict) -> None:
    """Mirror the knobs into the URL so that copying it shares the exact setting (a lesson's hide
    and note, and the run being watched, stay in it)."""
    params = _knob_params(values)
    for kept in ("hide", "note", "run"):
        if st.query_params.get(kept):
            params[kept] = st.query_params[kept]
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)
