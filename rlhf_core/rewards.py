"""Reward registry: every reward behind one batched interface.

    reward = get_reward("vader")
    reward(["a great film", "dull and boring"])          # -> [0.62, -0.36]
    reward(completions, prompts=prompts)                  # file rewards also see the prompts

Names (the contract in DESIGN.md): `vader` (default), `learned-rm`, `gold-rm`, `length[:N]`,
`keyword:<word>`, `hub:<model id>[:<label>]`, `file:<path>:<function>` (opt-in only).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from . import zoo

DEFAULT_REWARD = "vader"
ALLOW_CODE_ENV = "RLHF_EXPLORER_ALLOW_CODE"
FILE_REWARD_TIMEOUT_S = 10.0  # default per-batch limit; RLHF_EXPLORER_REWARD_TIMEOUT overrides it


class RewardError(ValueError):
    """A reward that cannot be built or that returned something unusable; message is for the user."""


@dataclass(frozen=True)
class RewardSpec:
    name: str
    description: str
    value_range: tuple[float, float]
    needs_network: bool = False


class Reward:
    """Batched reward: `reward(texts, prompts=None) -> list[float]`, validated."""

    def __init__(self, spec: RewardSpec, fn: Callable[[list[str], list[str] | None], Sequence[float]]):
        self.spec = spec
        self._fn = fn

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        texts = list(texts)
        out = self._fn(texts, list(prompts) if prompts is not None else None)
        return _validated(self.spec.name, out, len(texts))

    def __repr__(self) -> str:
        return f"Reward({self.spec.name!r})"


def _validated(name: str, out, n: int) -> list[float]:
    if isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        raise RewardError(f"reward '{name}' must return a list of {n} numbers, got {type(out).__name__}")
    if hasattr(out, "tolist"):
        out = out.tolist()
    if len(out) != n:
        raise RewardError(f"reward '{name}' returned {len(out)} values for {n} texts")
    values = []
    for i, v in enumerate(out):
        if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
            raise RewardError(f"reward '{name}' returned a {type(v).__name__} at position {i}; "
                              "rewards must be numbers")
        if isinstance(v, (str, bytes)):
            raise RewardError(f"reward '{name}' returned a string at position {i}; rewards must be numbers")
        values.append(float(v))  # NaN / inf pass through: the engine reports them as "diverged"
    return values


# ---- built-in rewards -------------------------------------------------------------------------

STATIC_SPECS = {
    "vader": RewardSpec("vader", "VADER compound sentiment of the completion: +1 very positive, -1 very negative.",
                        (-1.0, 1.0)),
    "learned-rm": RewardSpec("learned-rm", "Small learned reward model (Bradley-Terry on 5,000 IMDB preference "
                             "pairs): the cheap proxy for human feedback.", (-math.inf, math.inf)),
    "gold-rm": RewardSpec("gold-rm", "Independent judge: its own half of the IMDB training reviews (disjoint "
                          "from every proxy's), its own seed, initialised from the SFT policy: the 'gold' "
                          "stand-in for human judgement in the over-optimization labs.", (-math.inf, math.inf)),
    "gold-prime-rm": RewardSpec("gold-prime-rm", "gold′: gold-rm also taught to rank natural review text above "
                                "corrupted copies (words repeated, shuffled or run on), so degenerate text scores "
                                "low: the judge of the T3 over-optimization labs.", (-math.inf, math.inf)),
    "length": RewardSpec("length", "Closeness of the completion's word count to a target (length:N, default 20): "
                         "1 on target, falling linearly to -1.", (-1.0, 1.0)),
    "keyword": RewardSpec("keyword", "keyword:<word> gives 1 when the completion contains the word, else 0.",
                          (0.0, 1.0)),
    "hub": RewardSpec("hub", "hub:<model id>[:<label>] uses any hub sequence classifier; the reward is the "
                      "logit of the chosen label (default: the positive one).", (-math.inf, math.inf), True),
    "file": RewardSpec("file", "file:<path>:<function> calls reward(prompts, completions) from your own Python "
                       f"file; needs {ALLOW_CODE_ENV}=1 or --allow-code.", (-math.inf, math.inf)),
}


def _vader() -> Reward:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return Reward(STATIC_SPECS["vader"],
                  lambda texts, _p: [analyzer.polarity_scores(t)["compound"] for t in texts])


class ClassifierScorer:
    """Scores texts with a sequence classifier; the reward is one logit."""

    def __init__(self, model, tok, label_index: int = 0, max_length: int = 256):
        import torch

        self.model = model.eval()
        self.tok = tok
        self.label_index = label_index
        self.max_length = max_length
        self._torch = torch

    def __call__(self, texts, _prompts=None):
        if not texts:
            return []
        enc = self.tok(list(texts), return_tensors="pt", padding=True, truncation=True,
                       max_length=self.max_length)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        with self._torch.inference_mode():
            logits = self.model(**enc).logits
        return logits[:, self.label_index].float().cpu().tolist()


def _embedded_rm(name: str) -> Reward:
    model, tok = zoo.load_sequence_classifier(name, "reward model")
    return Reward(STATIC_SPECS[name], ClassifierScorer(model, tok))


def _length(arg: str | None) -> Reward:
    try:
        target = int(arg) if arg else 20
    except ValueError:
        raise RewardError(f"length reward target must be a whole number of words, got '{arg}'") from None
    if target <= 0:
        raise RewardError(f"length reward target must be > 0, got {target}")
    spec = RewardSpec(f"length:{target}" if arg else "length", STATIC_SPECS["length"].description,
                      (-1.0, 1.0))
    return Reward(spec, lambda texts, _p: [max(-1.0, 1.0 - abs(len(t.split()) - target) / target)
                                           for t in texts])


def _keyword(word: str | None) -> Reward:
    if not word or not word.strip():
        raise RewardError("keyword reward needs a word: keyword:<word>, e.g. keyword:great")
    pattern = re.compile(r"\b" + re.escape(word.strip()) + r"\b", re.IGNORECASE)
    spec = RewardSpec(f"keyword:{word.strip()}", STATIC_SPECS["keyword"].description, (0.0, 1.0))
    return Reward(spec, lambda texts, _p: [1.0 if pattern.search(t) else 0.0 for t in texts])


def split_hub_reward(arg: str) -> tuple[str, str | None]:
    """'lvwerra/distilbert-imdb:POSITIVE' -> (model id, label); the label is optional."""
    model_id, _, label = arg.partition(":")
    return model_id, label or None


def _hub(arg: str | None) -> Reward:
    if not arg:
        raise RewardError("hub reward needs a model id: hub:<model id>, e.g. hub:lvwerra/distilbert-imdb")
    model_id, label = split_hub_reward(arg)
    try:
        model, tok = zoo.load_sequence_classifier(model_id, "reward model")
    except zoo.ZooError as e:
        raise RewardError(str(e)) from None
    id2label = {int(k): str(v) for k, v in (model.config.id2label or {}).items()}
    if label is None:
        positive = [i for i, v in id2label.items() if v.upper() in ("POSITIVE", "POS", "LABEL_1")]
        index = positive[0] if positive else max(id2label, default=0)
    elif label.isdigit() and int(label) in id2label:
        index = int(label)
    else:
        by_name = {v.upper(): i for i, v in id2label.items()}
        if label.upper() not in by_name:
            raise RewardError(f"reward model '{model_id}' has no label '{label}'; its labels are "
                              f"{', '.join(id2label.values())}")
        index = by_name[label.upper()]
    spec = RewardSpec(f"hub:{arg}", f"Hub classifier {model_id}, logit of label "
                      f"'{id2label.get(index, index)}'.", (-math.inf, math.inf), True)
    return Reward(spec, ClassifierScorer(model, tok, index))


def code_allowed(allow_code: bool = False) -> bool:
    """Whether code may run at all: the CLI's flag, or the server's opt-in (see check_code_file)."""
    return allow_code or os.environ.get(ALLOW_CODE_ENV, "").strip() in ("1", "true", "yes")


def check_code_file(path: str, allow_code: bool = False) -> str:
    """Whether a file: reward may load `path`; returns its real path, else raises RewardError.

    Two opt-ins, two scopes. The CLI's --allow-code (`allow_code`) is the person at the keyboard
    naming a file: any path. The server's RLHF_EXPLORER_ALLOW_CODE=1 lets anyone who can reach the
    UI name a file, so it reaches only files inside the operator's rewards folder
    (RLHF_EXPLORER_REWARDS_DIR, default ./rewards), checked on the real path so that '..' and
    symlinks cannot leave it. A hosted server takes no file rewards from the UI at all."""
    from . import hosting

    host = hosting.settings()
    if not allow_code:
        if host.hosted:
            raise RewardError("file: rewards run code and are off on a hosted server")
        if not code_allowed():
            raise RewardError(f"reward 'file:{path}' runs your own Python code, which is off by default. "
                              f"Opt in with the environment variable {ALLOW_CODE_ENV}=1 (files in "
                              f"{host.rewards_dir}/ only) or the CLI flag --allow-code.")
        # a relative path names a file in the project folder, where the workers run
        path = os.path.join(hosting.PROJECT_ROOT, path)
        real, folder = os.path.realpath(path), host.rewards_folder
        if os.path.commonpath([real, folder]) != folder:
            raise RewardError(f"reward file '{path}' is outside the rewards folder {folder}; with "
                              f"{ALLOW_CODE_ENV}=1 the app loads reward code only from there "
                              f"({hosting.PREFIX}REWARDS_DIR). The CLI's --allow-code takes any path.")
    if not os.path.isfile(path):
        raise RewardError(f"reward file '{path}' does not exist")
    return os.path.realpath(path)


def _file(arg: str | None, allow_code: bool) -> Reward:
    if not arg or ":" not in arg:
        raise RewardError("file reward must look like file:<path>:<function>, e.g. file:rewards/example.py:exclamations")
    path, func_name = arg.rsplit(":", 1)
    path = check_code_file(path, allow_code)
    if not func_name.isidentifier():
        raise RewardError(f"reward function name '{func_name}' is not a Python identifier")
    module_name = "rlhf_user_reward_" + re.sub(r"\W", "_", os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RewardError(f"reward file '{path}' is not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise RewardError(f"reward file '{path}' has a syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - any import-time failure of user code
        raise RewardError(f"reward file '{path}' failed while loading: {type(e).__name__}: {e}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise RewardError(f"reward file '{path}' defines no function '{func_name}'")

    def call(texts, prompts):
        # The user's function runs in a daemon thread so that a hung call fails the run after the
        # timeout instead of freezing it; the worker process exits afterwards, ending the thread.
        timeout = float(os.environ.get("RLHF_EXPLORER_REWARD_TIMEOUT", FILE_REWARD_TIMEOUT_S))
        result: dict = {}

        def target():
            try:
                result["out"] = fn(prompts if prompts is not None else [""] * len(texts), texts)
            except BaseException as e:  # noqa: BLE001 - user code
                result["error"] = e

        thread = threading.Thread(target=target, daemon=True, name="user-reward")
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise RewardError(f"reward function '{func_name}' in '{path}' did not return within {timeout:g} s "
                              "for one batch (limit: RLHF_EXPLORER_REWARD_TIMEOUT)")
        if "error" in result:
            e = result["error"]
            raise RewardError(f"reward function '{func_name}' in '{path}' raised {type(e).__name__}: {e}")
        return result["out"]

    spec_ = RewardSpec(f"file:{arg}", f"Your function {func_name}() from {os.path.basename(path)}.",
                       (-math.inf, math.inf))
    return Reward(spec_, call)


REWARD_CHOICES = ("vader, learned-rm, gold-rm, gold-prime-rm, length[:N], keyword:<word>, hub:<model id>[:<label>], "
                  "file:<path>:<function>")


def get_reward(name: str = DEFAULT_REWARD, allow_code: bool = False) -> Reward:
    """Build a reward by name. Raises RewardError with a user-facing message."""
    if not isinstance(name, str) or not name.strip():
        raise RewardError("reward name is empty")
    name = name.strip()
    kind, _, arg = name.partition(":")
    arg = arg or None
    if kind == "vader" and arg is None:
        return _vader()
    if kind in zoo.EMBEDDED_REWARD_MODELS and arg is None:
        try:
            return _embedded_rm(kind)
        except zoo.ZooError as e:
            raise RewardError(str(e)) from None
    if kind == "length":
        return _length(arg)
    if kind == "keyword":
        return _keyword(arg)
    if kind == "hub":
        return _hub(arg)
    if kind == "file":
        return _file(arg, allow_code)
    raise RewardError(f"unknown reward '{name}'; choose one of: {REWARD_CHOICES}")


def list_rewards() -> list[dict]:
    return [{"name": s.name, "description": s.description,
             "range": [s.value_range[0], s.value_range[1]], "needs_network": s.needs_network}
            for s in STATIC_SPECS.values()]


def check_reward_name(name: str) -> None:
    """Cheap syntax check of a reward name (no model loading), for config validation."""
    if not isinstance(name, str) or not name.strip():
        raise RewardError("reward: name is empty")
    kind, _, arg = name.strip().partition(":")
    if kind in ("vader", *zoo.EMBEDDED_REWARD_MODELS):
        if arg:
            raise RewardError(f"reward '{name}': '{kind}' takes no argument")
        return
    if kind in ("length", "keyword", "hub", "file"):
        if kind != "length" and not arg:
            raise RewardError(f"reward '{name}': '{kind}' needs an argument, e.g. "
                              + {"keyword": "keyword:great", "hub": "hub:lvwerra/distilbert-imdb",
                                 "file": "file:rewards/example.py:exclamations"}[kind])
        return
    raise RewardError(f"unknown reward '{name}'; choose one of: {REWARD_CHOICES}")
