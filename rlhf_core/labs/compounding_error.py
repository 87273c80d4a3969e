"""T2 lab `compounding_error`: behaviour cloning against an online imitation learner (DAgger).

Paper claim (Sun 2023, takeaway 2): RLHF beats SFT because learning online from the learner's own
rollouts (inverse RL / imitation) avoids the compounding error of behaviour cloning. Ross & Bagnell
(2010/2011): a cloned policy with per-step error eps makes O(eps T^2) mistakes over a horizon T,
because one slip leads to states the demonstrations never covered; an online learner trained on the
states it visits itself makes O(eps T).

Experiment: the hidden automaton of `token_task` (trap on). Both learners are the same tiny GPT-2,
trained with TRL's SFTTrainer:
- BC: next-token SFT on expert demonstrations only;
- online (DAgger): start from the BC model, roll the learner out, relabel every visited prefix with
  the expert's next token, aggregate with the demonstrations, fine-tune, repeat.
BC is already perfect on the states its demonstrations cover (the result reports that accuracy),
so more BC steps cannot help it: the two learners differ only in *which states* they trained on.
Both roll out greedily with the same slip probability eps (a random token), so both make first
mistakes alike; what differs is what follows.
"""

from __future__ import annotations


import numpy as np

from .support.common import Progress, fit_scaled, LabConfig, knob, lab_scratch_dir, quiet_libraries, r_squared, rounded, setup_torch
from .support.token_task import TokenTask, make_policy, make_tokenizer, rollout
from .support.verdict import Check

NAME = "compounding_error"


class Config(LabConfig):
    horizon: int = knob(48, "Longest horizon T (tokens per sequence); mistakes are counted for T/8 ... T.",
                        lo=8, hi=64)
    demos: int = knob(200, "Expert demonstrations for behaviour cloning (and the online learner's warm start).",
                      lo=10, hi=2000)
    vocab_size: int = knob(16, "Task tokens V; half of them are 'home' tokens the expert cycles through.",
                           lo=4, hi=64)
    width: int = knob(64, "Model size: GPT-2 hidden width.", choices=[32, 64, 96])
    layers: int = knob(2, "Model size: GPT-2 layers.", lo=1, hi=3)
    slip: float = knob(0.03, "Noise: per-step probability that a learner emits a random token (epsilon).",
                       lo=0.0, hi=0.3)
    bc_steps: int = knob(60, "SFT steps of behaviour cloning (the online learner starts from it).",
                         lo=10, hi=120, advanced=True)
    rounds: int = knob(3, "DAgger rounds.", lo=1, hi=4)
    round_steps: int = knob(60, "SFT steps per DAgger round.", lo=5, hi=60, advanced=True)
    rollouts_per_round: int = knob(150, "Learner rollouts relabelled by the expert per DAgger round.",
                                   lo=10, hi=300, advanced=True)
    eval_rollouts: int = knob(400, "Rollouts per learner used to count mistakes.", lo=50, hi=1000,
                               advanced=True)
    learning_rate: float = knob(3e-3, "Adam learning rate for every SFT phase.", lo=1e-5, hi=1e-1,
                                 advanced=True)
    seed: int = knob(0, "Seed for the automaton, data, model init and rollouts.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)


QUICK = {"horizon": 32, "eval_rollouts": 300}
LARGEST = {"horizon": 64, "width": 96, "layers": 3, "rounds": 4, "round_steps": 60, "bc_steps": 120,
           "demos": 2000, "rollouts_per_round": 300, "eval_rollouts": 1000}


def _sft(model, tok, rows: list[dict], steps: int, lr: float, seed: int) -> float:
    """max_steps of TRL SFT on pre-tokenized rows ({input_ids[, labels]}); returns the final loss."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=lab_scratch_dir(NAME), max_steps=steps, per_device_train_batch_size=32,
        learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        logging_steps=max(1, steps), save_strategy="no", report_to=[], seed=seed,
        use_cpu=True, bf16=False, gradient_checkpointing=False, disable_tqdm=True,
        dataloader_num_workers=0, max_length=None, padding_free=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    from ..worker import _quiet_trainer

    _quiet_trainer(trainer)
    out = trainer.train()
    return float(out.training_loss)


def _accuracy_on(model, task: TokenTask, seqs: np.ndarray) -> float:
    """Greedy next-token accuracy on the given prefixes (for BC: the demonstrations' own states)."""
    import torch

    _, labels = task.judge(seqs)
    with torch.no_grad():
        pred = model(input_ids=torch.as_tensor(seqs)).logits[:, :-1, :task.vocab_size].argmax(-1).numpy()
    return float((pred == labels).mean())


def _mistake_stats(task: TokenTask, seqs: np.ndarray, horizons: list[int]) -> dict:
    mistakes, _ = task.judge(seqs)
    T = mistakes.shape[1]
    cum = mistakes.cumsum(1)
    first = np.where(mistakes.any(1), mistakes.argmax(1), T)
    after = mistakes[:, :-1]
    recovered = (~mistakes[:, 1:]) & after
    return {
        "mistakes": [float(cum[:, h - 1].mean()) for h in horizons],
        "per_position_error": rounded(mistakes.mean(0), 4),
        "first_mistake": [int(x) for x in np.bincount(first, minlength=T + 1)],  # index T = none
        "recovery_rate": float(recovered.sum() / after.sum()) if after.sum() else None,
    }


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: importing torch and TRL")
    setup_torch(cfg.threads, cfg.seed)
    quiet_libraries()
    rng = np.random.default_rng(cfg.seed)
    task = TokenTask(vocab_size=cfg.vocab_size, home_size=max(2, cfg.vocab_size // 2), trap=True, seed=cfg.seed)
    tok = make_tokenizer(cfg.vocab_size)
    T = cfg.horizon
    demos = task.demonstrations(cfg.demos, T, rng)
    # explicit labels on every row: the aggregate mixes demonstrations with relabelled rollouts
    demo_rows = [{"input_ids": s.tolist(), "labels": [-100] + s[1:].tolist()} for s in demos]

    p(0.05, "bc: behaviour cloning warm start (SFT on demonstrations)")
    bc = make_policy(cfg.vocab_size, cfg.width, cfg.layers, T + 1, cfg.seed)
    _sft(bc, tok, demo_rows, cfg.bc_steps, cfg.learning_rate, cfg.seed)
    # a fresh module, not copy.deepcopy: the Trainer leaves wrappers on `bc` whose deep copies
    # would still run bc's own weights (measured: the "copy" trained but its outputs never changed)
    online = make_policy(cfg.vocab_size, cfg.width, cfg.layers, T + 1, cfg.seed)
    online.load_state_dict(bc.state_dict())

    aggregate = list(demo_rows)
    dagger_curve = []  # mistakes per sequence of the learner's own rollouts, round by round
    for r in range(cfg.rounds):
        p(0.3 + 0.5 * r / cfg.rounds, f"dagger: round {r + 1}/{cfg.rounds}, rollouts relabelled by the expert")
        seqs = rollout(online, task, task.starts(cfg.rollouts_per_round, rng), T, cfg.slip, rng)
        wrong, labels = task.judge(seqs)
        dagger_curve.append(float(wrong.sum(1).mean()))
        for s, lab in zip(seqs, labels):
            aggregate.append({"input_ids": s.tolist(), "labels": [-100] + lab.tolist()})
        _sft(online, tok, aggregate, cfg.round_steps, cfg.learning_rate, cfg.seed + 2 + r)

    p(0.85, "eval: counting mistakes on fresh rollouts")
    horizons = sorted({max(1, round(T * k / 8)) for k in range(1, 9)})
    starts = task.starts(cfg.eval_rollouts, rng)
    eval_rng_state = rng.bit_generator.state
    bc_seqs = rollout(bc, task, starts, T, cfg.slip, rng)
    bc_stats = _mistake_stats(task, bc_seqs, horizons)
    bc_stats["demo_state_accuracy"] = _accuracy_on(bc, task, task.demonstrations(200, T, rng))
    rng.bit_generator.state = eval_rng_state  # the same slips for both learners: a paired comparison
    on_stats = _mistake_stats(task, rollout(online, task, starts, T, cfg.slip, rng), horizons)

    # least-squares fits of the published forms: c*eps*T^2 fitted to BC, c*eps*T to the online learner (and the cross fits,
    # to say which shape each learner follows)
    eps = max(cfg.slip, 1e-9)
    fits = {}
    for who, ys in (("bc", bc_stats["mistakes"]), ("online", on_stats["mistakes"])):
        c_quad = fit_scaled(horizons, ys, lambda t: eps * t * t)
        c_lin = fit_scaled(horizons, ys, lambda t: eps * t)
        fits[who] = {
            "c_quadratic": c_quad, "r2_quadratic": r_squared(ys, [c_quad * eps * t * t for t in horizons]),
            "c_linear": c_lin, "r2_linear": r_squared(ys, [c_lin * eps * t for t in horizons]),
        }
    p(1.0, "done")
    return {
        "lab": NAME, "config": cfg.model_dump(),
        "horizons": horizons,
        "bc_mistakes": rounded(bc_stats["mistakes"]),
        "online_mistakes": rounded(on_stats["mistakes"]),
        "bc": bc_stats, "online": on_stats, "fits": fits, "epsilon": cfg.slip,
        "dagger_curve": rounded(dagger_curve),
        "runtime_s": round(p.elapsed(), 2), "timings": p.timings,
    }


def _growth(result: dict, who: str) -> tuple[float, float, int, int]:
    """How much `who`'s mistakes multiply from T/2 to T, the horizon ratio, and the two horizons."""
    H, ys = result["horizons"], result[f"{who}_mistakes"]
    half = H.index(min(H, key=lambda h: abs(h - H[-1] / 2)))
    return ys[-1] / max(ys[half], 1e-9), H[-1] / H[half], H[half], H[-1]


def _bc_worse(result: dict) -> str | None:
    H, bc, on = result["horizons"], result["bc_mistakes"], result["online_mistakes"]
    if bc[-1] > 2 * on[-1]:
        return None
    return f"at T={H[-1]} BC made {bc[-1]:.2f} mistakes vs the online learner's {on[-1]:.2f} (not over twice)"


def _bc_superlinear(result: dict) -> str | None:
    growth, ratio, h0, h1 = _growth(result, "bc")
    fits = result["fits"]["bc"]
    if growth > 1.25 * ratio and fits["r2_quadratic"] > fits["r2_linear"]:
        return None
    return (f"BC's mistakes grew {growth:.2f}x from T={h0} to T={h1} (super-linear needs > {1.25 * ratio:.2f}x); "
            f"R² of c·ε·T² {fits['r2_quadratic']:.2f} vs c·ε·T {fits['r2_linear']:.2f}")


def _online_linear(result: dict) -> str | None:
    growth, ratio, h0, h1 = _growth(result, "online")
    fits = result["fits"]["online"]
    if growth < 1.25 * ratio and fits["r2_linear"] > fits["r2_quadratic"]:
        return None
    return (f"the online learner's mistakes grew {growth:.2f}x from T={h0} to T={h1} (about linear needs < "
            f"{1.25 * ratio:.2f}x); R² of c·ε·T {fits['r2_linear']:.2f} vs c·ε·T² {fits['r2_quadratic']:.2f}")


CHECKS = [
    Check("bc_makes_more_mistakes", "At the longest horizon behaviour cloning makes more than twice the mistakes of "
          "the online learner, from the same demonstrations and the same slip rate.",
          "Ross & Bagnell 2010, Ross et al. 2011 (DAgger), Theorems 2.1 and 3.1",
          "Both learners slip alike and start from the same model; if the learner could recover without online "
          "data, BC would match it. Test: BC's series replaced by the online learner's.",
          _bc_worse),
    Check("bc_grows_superlinearly", "BC's mistakes grow super-linearly in T (doubling T more than 2.5x the "
          "mistakes) and c·ε·T² fits them better than c·ε·T.",
          "Ross & Bagnell 2010: O(ε T²) for behaviour cloning",
          "If a slip did not lead into states the demonstrations never covered, BC's mistakes would grow about "
          "linearly; test: BC's series replaced by the online learner's.",
          _bc_superlinear),
    Check("online_grows_linearly", "The online learner's mistakes grow about linearly (doubling T less than 2.5x "
          "the mistakes) and c·ε·T fits them better than c·ε·T².",
          "Ross et al. 2011: O(ε T) for DAgger",
          "If DAgger's relabelled rollouts did not teach recovery, it would compound like BC; test: the online "
          "series replaced by BC's.",
          _online_linear),
]


def headline(result: dict) -> str:
    H, bc, on = result["horizons"], result["bc_mistakes"], result["online_mistakes"]
    return (f"mistakes at T = {H[0]}…{H[-1]}: BC {bc[0]:.2f} → {bc[-1]:.2f}, online {on[0]:.2f} → {on[-1]:.2f}")
