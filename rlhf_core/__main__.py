"""Command line: `python -m rlhf_core COMMAND ...` (the contract is in DESIGN.md).

    train CONFIG.yaml [--run-dir DIR] [--set key=value ...] [--allow-code]
    show RUN_DIR [--json]          export RUN_DIR... [--csv FILE] [--tensorboard DIR] [--trackio PROJECT]
    zoo [--json]                   zoo eval [--policy NAME] [--json]
    score --reward NAME TEXT...
    generate --policy NAME --prompt TEXT [-n N]
    bench [--quick] [--json] [--browser] [--labs] [--gpu] [--classroom [--visitors N]] [--out FILE]
    lab NAME [--quick | --evidence] [--seeds N] [--set key=value ...] [--json]

Exit codes: 0 success, 1 run failure, 2 invalid input (one line naming the field, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _fail(msg: str, code: int) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


# ---- train -------------------------------------------------------------------------------------

def cmd_train(a) -> int:
    from . import runs
    from .config import ConfigError, RunConfig, parse_set_args
    from .rewards import check_reward_name

    try:
        cfg = RunConfig.from_yaml(a.config) if a.config != "-" else RunConfig()
        overrides = parse_set_args(a.set)
        if overrides:
            cfg = cfg.with_overrides(overrides)
        check_reward_name(cfg.reward)
    except (ConfigError, ValueError) as e:
        return _fail(str(e), EXIT_INVALID)

    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    import torch

    # Under a multi-process launch (`accelerate launch --multi_gpu`, torchrun) on CPUs, the
    # processes join one gloo group only if accelerate is told at its first call that this is CPU
    # work; otherwise each process would train alone and all of them would write the store.
    state = PartialState(cpu=cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()))
    path = [None]
    if state.is_main_process:
        try:
            path[0] = runs.create_run(cfg, a.runs_root, path=os.path.abspath(a.run_dir) if a.run_dir else None)
        except runs.RunError as e:
            path[0] = f"ERROR:{e}"
    if state.num_processes > 1:
        broadcast_object_list(path)
    if path[0].startswith("ERROR:"):
        return _fail(path[0][6:], EXIT_FAIL)
    run_dir = path[0]
    from .worker import run_worker

    bar = _progress_bar(cfg.steps, state.is_main_process and not a.quiet)
    if state.is_main_process:
        print(f"run dir: {run_dir}", file=sys.stderr)
    try:
        status = run_worker(run_dir, allow_code=a.allow_code, progress=bar)
    finally:
        if bar:
            bar.close()
    if not state.is_main_process:
        # A helper rank writes nothing and its collectives are over. It leaves without the
        # interpreter's teardown, where torch.distributed's threads can still be joinable and the C++
        # runtime aborts the rank ("terminate called without an active exception", SIGABRT) after a
        # run that finished. Measured on the two-process test: 1 abort in 7 runs as before, 2 in 6 with
        # destroy_process_group() called first, none in 16 with this exit.
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_OK if status in ("finished", "stopped") else EXIT_FAIL)
    r = runs.info_at(run_dir)
    reward = r.last.get("reward")
    summary = f"{status}: {r.steps_done}/{r.steps_total} steps"
    if reward is not None:
        summary += f", last reward {reward:.3f}"
    print(summary + (f" ({r.error})" if r.error else ""), file=sys.stderr)
    return EXIT_OK if status in ("finished", "stopped") else EXIT_FAIL


class _Bar:
    def __init__(self, total):
        from tqdm import tqdm

        self.tqdm = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def __call__(self, step, total, metrics):
        post = {k: f"{metrics[k]:.3f}" for k in ("reward", "kl") if isinstance(metrics.get(k), float)}
        self.tqdm.set_postfix(post, refresh=False)
        self.tqdm.update(step - self.tqdm.n)

    def close(self):
        self.tqdm.close()


def _progress_bar(total, enabled):
    return _Bar(total) if enabled else None


# ---- show / export -----------------------------------------------------------------------------

def cmd_show(a) -> int:
    from . import runs

    try:
        r = runs.info_at(a.run_dir)
    except runs.RunError as e:
        return _fail(str(e), EXIT_INVALID)
    out = {k: v for k, v in r.as_json().items() if k in ("status", "steps_done", "steps_total", "last",
                                                          "error", "config")}
    if a.json:
        print(json.dumps(out, default=str))
    else:
        print(f"{r.id}: {r.status}, {r.steps_done}/{r.steps_total} steps")
        for k in ("reward", "kl", "objective", "entropy"):
            if r.last.get(k) is not None:
                print(f"  {k}: {r.last[k]:.4f}")
        if r.error:
            print(f"  error: {r.error}")
    return EXIT_OK


def cmd_export(a) -> int:
    from .export import ExportError, to_tensorboard, to_trackio
    from .store import RunStore, StoreError, write_csv

    if not (a.csv or a.tensorboard or a.trackio):
        return _fail("export needs --csv FILE, --tensorboard DIR or --trackio PROJECT", EXIT_INVALID)
    if a.csv and len(a.run_dir) > 1:
        return _fail("--csv takes one run; --tensorboard and --trackio take several", EXIT_INVALID)
    for run_dir in a.run_dir:
        target = a.csv
        try:
            if a.csv:
                rows = RunStore(run_dir).metrics_since(-1)
                if a.csv == "-":
                    write_csv(rows, sys.stdout)
                else:
                    with open(a.csv, "w", newline="") as f:
                        write_csv(rows, f)
                    print(f"wrote {len(rows)} steps to {a.csv}", file=sys.stderr)
            target = a.tensorboard
            if a.tensorboard:
                print(f"wrote {to_tensorboard(run_dir, a.tensorboard)}", file=sys.stderr)
            target = f"trackio project {a.trackio}"
            if a.trackio:
                print(f"logged {to_trackio(run_dir, a.trackio)} to trackio project {a.trackio}", file=sys.stderr)
        except (StoreError, ExportError) as e:
            return _fail(str(e), EXIT_INVALID)
        except OSError as e:  # the file or folder being written, not always the CSV
            return _fail(f"{target}: cannot write ({e.strerror or e})", EXIT_INVALID)
    if a.tensorboard:
        print(f"open with: tensorboard --logdir {a.tensorboard}", file=sys.stderr)
    if a.trackio:
        print(f"open with: trackio show --project {a.trackio}", file=sys.stderr)
    return EXIT_OK


# ---- zoo / score / generate --------------------------------------------------------------------

def cmd_zoo(a) -> int:
    from . import zoo
    from .rewards import list_rewards

    policies = zoo.policy_choices()
    rewards = list_rewards()
    for r in rewards:
        meta = zoo.asset_info(r["name"])
        if "held_out_pair_accuracy" in meta:
            r["held_out_pair_accuracy"] = meta["held_out_pair_accuracy"]
    out = {"policies": policies, "rewards": rewards}
    if a.json:
        print(json.dumps(out))
    else:
        print("Policies:")
        for p in policies:
            note = f" [{p['unavailable']}]" if p.get("unavailable") else ""
            print(f"  {p['name']:<28} {p['description']}{note}")
        print("Rewards:")
        for r in rewards:
            print(f"  {r['name']:<28} {r['description']}")
    return EXIT_OK


def cmd_zoo_eval(a) -> int:
    from . import zoo
    from .zoo.evaluate import evaluate, reference

    _quiet_libraries()
    try:
        result = evaluate(a.policy, seed=a.seed)
    except zoo.ZooError as e:
        return _fail(str(e), EXIT_INVALID)
    result["real_reviews"] = reference()
    if a.json:
        print(json.dumps(result))
    else:
        ref = result["real_reviews"]
        print(f"{result['policy']} ({result['params'] / 1e6:.2f}M params), {result['samples']} samples of "
              f"{result['new_tokens']} tokens at temperature 1 (seed {result['seed']}):")
        print(f"  real-word fraction  {result['real_word_fraction']:.3f}   (held-out real reviews: "
              f"{ref['real_word_fraction']:.3f}; a word is real if it occurs >= {result['min_count']} times in IMDB)")
        print(f"  distinct-2          {result['distinct_2']:.3f}   (real reviews: {ref['distinct_2']:.3f})")
        print(f"  held-out LM loss    {result['heldout_loss']:.3f} nats/token, "
              f"{result['heldout_bits_per_char']:.3f} bits/char")
        print(f"  e.g. {result['example']!r}")
    return EXIT_OK


def _quiet_libraries() -> None:
    """A CLI answer is the answer: the worker's silencing of progress bars and library chatter
    (our own one-line errors still come through)."""
    from .worker import _quiet_libraries as quiet

    quiet()


def cmd_score(a) -> int:
    from .rewards import RewardError, get_reward

    _quiet_libraries()
    try:
        reward = get_reward(a.reward, allow_code=a.allow_code)
        print(json.dumps(reward(a.texts)))
    except RewardError as e:
        return _fail(str(e), EXIT_INVALID)
    return EXIT_OK


def cmd_generate(a) -> int:
    from . import zoo
    from .generation import generate

    if a.n < 1 or a.n > 256:
        return _fail(f"-n must be between 1 and 256, got {a.n}", EXIT_INVALID)
    if a.max_new_tokens < 1 or a.max_new_tokens > 1024:
        return _fail(f"--max-new-tokens must be between 1 and 1024, got {a.max_new_tokens}", EXIT_INVALID)
    if not a.temperature > 0:
        return _fail(f"--temperature must be > 0, got {a.temperature}", EXIT_INVALID)
    _quiet_libraries()
    try:
        model, tok = zoo.load_policy(a.policy)
    except zoo.ZooError as e:
        return _fail(str(e), EXIT_INVALID)
    texts = generate(model, tok, [a.prompt], a.n, a.max_new_tokens, a.temperature, a.seed)[0]
    if a.json:
        print(json.dumps([a.prompt + t for t in texts]))
    else:
        for t in texts:
            print(a.prompt + t)
    return EXIT_OK


# ---- bench / lab ---------------------------------------------------------------------------------
# (no ImportError is turned into a message here: a missing dependency shows as itself)

def cmd_bench(a) -> int:
    from .bench import main as bench_main

    return bench_main(quick=a.quick, as_json=a.json, labs_only=a.labs, out=a.out, gpu=a.gpu, browser=a.browser,
                      classroom_visitors=a.visitors if a.classroom else None)


def cmd_lab(a) -> int:
    from .config import ConfigError

    from .labs import evidence_settings, run_lab

    try:
        overrides = parse_lab_sets(a.set)
        if a.evidence and a.quick:
            raise ConfigError("--evidence and --quick ask for opposite settings: give one")
        if a.evidence:  # --set still overrides single settings on top of the evidence settings
            overrides = {**evidence_settings(a.name), **overrides}
    except ConfigError as e:
        return _fail(str(e), EXIT_INVALID)
    return run_lab(a.name, quick=a.quick, as_json=a.json, overrides=overrides, out=a.out,
                   progress_file=a.progress_file, seeds=a.seeds)


def parse_lab_sets(pairs: list[str] | None) -> dict:
    """`--set key=value` for a lab; values are YAML scalars or flow lists (`vocab=[8,64]`)."""
    import yaml

    from .config import ConfigError

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{key.strip()}: cannot parse '{raw}'") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlhf_core", description="RLHF Explorer command line")
    p.add_argument("--runs-root", default=None, help="runs folder (default ./runs or $RLHF_EXPLORER_RUNS)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one run in the foreground")
    t.add_argument("config", help="YAML config file (e.g. presets/classic-grpo.yaml), or - for defaults")
    t.add_argument("--run-dir", help="where to write the run (default: a new folder under the runs root)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a knob")
    t.add_argument("--allow-code", action="store_true", help="allow file:<path>:<fn> rewards to run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=cmd_train)

    s = sub.add_parser("show", help="status and last metrics of a run")
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_show)

    e = sub.add_parser("export", help="write runs as CSV, TensorBoard event files or a trackio project")
    e.add_argument("run_dir", nargs="+", help="run folders, e.g. runs/<id> (several for --tensorboard, --trackio)")
    e.add_argument("--csv", help="the run's metrics per step: an output file, or - for stdout")
    e.add_argument("--tensorboard", metavar="DIR", help="write DIR/<run id>/: metrics, knob changes, samples "
                   "and the config (again: replaces that run's files); open with tensorboard --logdir DIR")
    e.add_argument("--trackio", metavar="PROJECT", help="log into a local trackio project (pip install "
                   "trackio); the runs of one sweep share a group")
    e.set_defaults(fn=cmd_export)

    z = sub.add_parser("zoo", help="list policies and rewards; `zoo eval` measures how readable a policy's text is")
    z.add_argument("action", nargs="?", choices=["eval"],
                   help="eval: held-out LM loss, real-word fraction and distinct-2 of a policy")
    z.add_argument("--policy", default="imdb-tiny", help="with eval: the policy to measure")
    z.add_argument("--seed", type=int, default=0, help="with eval: the sampling seed")
    z.add_argument("--json", action="store_true")
    z.set_defaults(fn=lambda a: cmd_zoo_eval(a) if a.action == "eval" else cmd_zoo(a))

    sc = sub.add_parser("score", help="score texts with a reward; prints a JSON list")
    sc.add_argument("--reward", default="vader")
    sc.add_argument("--allow-code", action="store_true")
    sc.add_argument("texts", nargs="+")
    sc.set_defaults(fn=cmd_score)

    g = sub.add_parser("generate", help="sample completions from a policy")
    g.add_argument("--policy", default="imdb-tiny")
    g.add_argument("--prompt", required=True)
    g.add_argument("-n", type=int, default=1)
    g.add_argument("--max-new-tokens", type=int, default=24)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--json", action="store_true")
    g.set_defaults(fn=cmd_generate)

    b = sub.add_parser("bench", help="run the benchmark suite")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--json", action="store_true")
    b.add_argument("--labs", action="store_true", help="time every lab at its default and largest settings "
                   "(--quick: default only)")
    b.add_argument("--out", help="also write the result, with the command, git commit and machine, as JSON to "
                   "this file (docs/bench-results.json and docs/lab-timings.json are written this way)")
    b.add_argument("--browser", action="store_true", help="only the browser figures: click latency and step-to-"
                   "pixels in Chromium while a run trains, and the server's memory with every page visited")
    b.add_argument("--gpu", action="store_true", help="on a CUDA machine: step times and peak GPU memory of the "
                   "default preset, SmolLM2 and a 2-process accelerate run")
    b.add_argument("--classroom", action="store_true", help="a class on a hosted server: N browsers each start "
                   "the default preset at 30 steps; wall time, each visitor's wait, server memory, exceptions")
    b.add_argument("--visitors", type=int, default=5, help="how many visitors --classroom simulates (default 5)")
    b.set_defaults(fn=cmd_bench)

    lab = sub.add_parser("lab", help="run one of the paper's labs")
    lab.add_argument("name")
    lab.add_argument("--quick", action="store_true")
    lab.add_argument("--evidence", action="store_true",
                     help="the settings of the lab's stored 5-seed evidence (heavier than the defaults for some labs)")
    lab.add_argument("--json", action="store_true")
    lab.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a lab setting")
    lab.add_argument("--seeds", type=int, default=1, metavar="N",
                     help="run N seeds (from the lab's seed on) and report on how many of them the shape held")
    lab.add_argument("--out", help="also write the JSON result to this file")
    lab.add_argument("--progress-file", help="write progress as JSON here (used by the app)")
    lab.set_defaults(fn=cmd_lab)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
