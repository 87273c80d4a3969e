"""T4 lab `credit`: per-token credit (PPO's GAE) beside one number per completion (GRPO, RLOO).

Paper claim (Sun 2023, takeaway 4): for a language model every token is an action and the reward
arrives once, at the end of the sequence, so the learner must work out which tokens earned it. PPO
answers with a learned value function V(s_t) and generalised advantage estimation (GAE): each
token's advantage is the discounted sum of temporal-difference errors after it, so tokens where the
critic's expectation jumps get large credit. GRPO and RLOO learn no critic: every token of a
completion gets the same sequence-level advantage, (r - group mean) / group std for GRPO and
r - (mean of the other completions of the prompt) for RLOO.

What this lab does, with the playground's own pieces:
1. a short real PPO run with the project's engine (`rlhf_core.algorithms.ppo`, TRL's PPOTrainer) on
   the embedded policy `imdb-tiny`. TRL trains the value model during that run. We initialise it
   from the embedded reward model `learned-rm`, as InstructGPT did: a value head trained for a few
   steps from TRL's default start (the policy plus a random scalar head) is still close to noise, so
   its advantages would show nothing. Setting `value_init=policy` shows TRL's default;
   `ppo_steps=0` shows the untrained value model.
2. fresh completions for held-out prompts, `group_size` per prompt (one GRPO/RLOO group each),
   sampled from the trained policy. For them we recompute what TRL's PPOTrainer computes inside a
   step: per-token log-ratios to the reference, per-token rewards (-kl_coef * (log pi - log pi_ref)
   at every token plus the score at the last token), values V(s_t) from the trained value model, and
   GAE with the run's gamma and lambda; beside them the GRPO and RLOO advantages of the same
   completions. The score goes on the completion's last token (TRL does the same for completions that
   reach response_length; for ones that end in EOS it adds one padded step, which we skip).

It needs TRL and several seconds of PPO, so it is its own cached lab rather than part of
`action_space`'s 20 s budget.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from .support.common import Progress, LabConfig, knob, lab_scratch_dir, make_config, quiet_libraries, setup_torch

NAME = "credit"


class Config(LabConfig):
    ppo_steps: int = knob(6, "Steps of the short PPO run that trains the value model (0 = the value model "
                             "as initialised, policy = reference).", lo=0, hi=20)
    value_init: str = knob("learned-rm", "Where the value model starts: the reward model (InstructGPT's "
                                         "practice) or the policy with a fresh head (TRL's default).",
                           choices=["learned-rm", "policy"])
    reward: str = knob("learned-rm", "Sequence-level reward given at the end of each completion.",
                       choices=["learned-rm", "vader"])
    prompts: int = knob(4, "Held-out prompts shown; each gets one group of completions.", lo=1, hi=8)
    group_size: int = knob(4, "Completions per prompt (the GRPO / RLOO group).", lo=2, hi=8)
    response_length: int = knob(16, "Tokens per completion (also in the PPO run).", lo=4, hi=24)
    kl_coef: float = knob(0.05, "beta: per-token KL penalty inside PPO's reward (and RLOO's).", lo=0.0, hi=1.0)
    gamma: float = knob(1.0, "GAE discount gamma (the playground's PPO default).", lo=0.0, hi=1.0, advanced=True)
    lam: float = knob(0.95, "GAE lambda: 1 = Monte-Carlo return minus V, 0 = one-step TD error.",
                      lo=0.0, hi=1.0, advanced=True)
    learning_rate: float = knob(1e-4, "Adam learning rate of the PPO run (policy and value model).",
                                lo=1e-6, hi=1e-2, advanced=True)
    update_epochs: int = knob(4, "PPO epochs per rollout.", lo=1, hi=4, advanced=True)
    seed: int = knob(0, "Seed for the PPO run and the sampled completions.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)


QUICK = {"ppo_steps": 2, "prompts": 2, "update_epochs": 2}
LARGEST = {"ppo_steps": 20, "prompts": 8, "group_size": 8, "response_length": 24, "update_epochs": 4}

PROMPT_TOKENS = 8  # the playground's prompt length (RunConfig.prompt_tokens)


def _short_ppo(cfg: Config, policy, tok, reward, progress: Progress):
    """The playground's PPO engine for cfg.ppo_steps steps; returns (policy, value_model, ref, history)."""
    from transformers import TrainerCallback

    from .. import zoo
    from ..algorithms import ppo
    from ..algorithms.common import RolloutRecorder
    from ..config import RunConfig
    from ..prompts import review_openings
    from ..worker import _quiet_trainer

    run_cfg = RunConfig(algorithm="ppo", reward=cfg.reward, kl_coef=cfg.kl_coef, learning_rate=cfg.learning_rate,
                        steps=cfg.ppo_steps, prompts_per_step=4, generations_per_prompt=4,
                        response_length=cfg.response_length, update_epochs=cfg.update_epochs, gamma=cfg.gamma,
                        lam=cfg.lam, seed=cfg.seed, device="cpu", threads=cfg.threads, prompt_tokens=PROMPT_TOKENS)
    recorder = RolloutRecorder(reward, tok, run_cfg.temperature)
    history = {"step": [], "reward": [], "value_loss": []}

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "train_runtime" in logs:
                return
            history["step"].append(state.global_step)
            history["reward"].append(logs.get("objective/scores"))
            history["value_loss"].append(logs.get("loss/value_avg"))
            progress(0.15 + 0.6 * state.global_step / max(1, cfg.ppo_steps),
                     f"ppo: step {state.global_step}/{cfg.ppo_steps} of the short PPO run")

    # PPOAdapter builds its value model from `policy_path`: pointing it at the reward model's folder is
    # how the value model starts from learned-rm (same GPT-2 shape, one-logit head)
    value_path = zoo.asset_dir("learned-rm") if cfg.value_init == "learned-rm" else policy.config._name_or_path
    adapter = ppo.build(run_cfg, policy, tok, recorder, review_openings(tok, PROMPT_TOKENS, "train"),
                        value_path, lab_scratch_dir(NAME), "cpu", [Record()])
    _quiet_trainer(adapter.trainer)
    with contextlib.redirect_stdout(sys.stderr):  # PPOTrainer prints a banner; stdout is the lab's JSON
        adapter.train()
    # the trained modules themselves (no copy.deepcopy: a Trainer's wrappers would survive it)
    wrapper = adapter.trainer.accelerator.unwrap_model(adapter.trainer.model)
    return wrapper.policy.eval(), wrapper.value_model.eval(), adapter.trainer.ref_model.eval(), history


def _untrained(cfg: Config, policy, tok):
    """ppo_steps=0: the value model as initialised; the policy is its own reference."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from .. import zoo

    path = zoo.asset_dir("learned-rm") if cfg.value_init == "learned-rm" else policy.config._name_or_path
    torch.manual_seed(cfg.seed)  # the fresh head of value_init=policy
    value_model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=torch.float32, use_safetensors=True, trust_remote_code=False)
    value_model.config.pad_token_id = tok.pad_token_id
    return policy.eval(), value_model.eval(), policy, {"step": [], "reward": [], "value_loss": []}


def _sample(policy, tok, prompt_ids: list[tuple[int, ...]], group_size: int, length: int, seed: int):
    """group_size completions per prompt; returns (ids [n, P+L], completion mask [n, L])."""
    import torch

    torch.manual_seed(seed)
    queries = torch.tensor([list(p) for p in prompt_ids for _ in range(group_size)])
    with torch.no_grad():
        out = policy.generate(input_ids=queries, attention_mask=torch.ones_like(queries), do_sample=True,
                              temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=length,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    completion = out[:, queries.shape[1]:]
    if completion.shape[1] < length:  # every completion stopped early
        pad = torch.full((len(out), length - completion.shape[1]), tok.pad_token_id)
        completion = torch.cat([completion, pad], 1)
    # a completion ends at its first EOS (kept, as TRL keeps the stop token) or at `length`
    is_eos = completion == tok.eos_token_id
    first_eos = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full((len(out),), length - 1))
    mask = torch.arange(length)[None, :] <= first_eos[:, None]
    completion = completion.masked_fill(~mask, tok.pad_token_id)
    return torch.cat([queries, completion], 1), mask


def _token_logps(model, ids, prompt_len: int):
    """log pi(y_t | prefix) of every completion token (temperature 1, as sampled)."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, prompt_len - 1:-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1)


def _values(value_model, ids, prompt_len: int):
    """V(s_t) for the state before each completion token, read as TRL does: the value model's scalar
    head on the backbone's hidden state at the last token of the prefix."""
    import torch

    backbone = getattr(value_model, value_model.base_model_prefix)
    with torch.no_grad():
        hidden = backbone(input_ids=ids).last_hidden_state
        return value_model.score(hidden).squeeze(-1)[:, prompt_len - 1:-1].float()


def gae(rewards: np.ndarray, values: np.ndarray, mask: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimation, per token, backwards from each completion's last token:
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t) (V after the last token = 0), A_t = delta_t + gamma lam A_{t+1}."""
    n, L = rewards.shape
    adv = np.zeros((n, L))
    for i in range(n):
        last = int(mask[i].sum()) - 1
        running = 0.0
        for t in range(last, -1, -1):
            next_value = values[i, t + 1] if t < last else 0.0
            delta = rewards[i, t] + gamma * next_value - values[i, t]
            running = delta + gamma * lam * running
            adv[i, t] = running
    return adv


def group_advantages(scores: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """GRPO: (r - group mean) / (group sample std + 1e-4); RLOO: r - mean of the other completions.
    One number per completion (TRL's formulas, scale_rewards='group' for GRPO)."""
    g = scores.reshape(-1, group_size)
    mean = g.mean(1, keepdims=True)
    grpo = (g - mean) / (g.std(1, ddof=1, keepdims=True) + 1e-4)
    rloo = g - (g.sum(1, keepdims=True) - g) / (group_size - 1)
    return grpo.reshape(-1), rloo.reshape(-1)


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: importing torch, transformers and TRL")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    setup_torch(cfg.threads, cfg.seed)
    quiet_libraries()
    from transformers import set_seed

    from .. import zoo
    from ..prompts import review_openings
    from ..rewards import get_reward

    set_seed(cfg.seed)
    policy, tok = zoo.load_policy("imdb-tiny")
    reward = get_reward(cfg.reward)
    p(0.1, f"ppo: short PPO run ({cfg.ppo_steps} steps) to train the value model")
    if cfg.ppo_steps:
        policy, value_model, ref, history = _short_ppo(cfg, policy, tok, reward, p)
    else:
        policy, value_model, ref, history = _untrained(cfg, policy, tok)

    p(0.8, "credit: sampling fresh completions and computing per-token advantages")
    prompt_ids = review_openings(tok, PROMPT_TOKENS, "eval")[:cfg.prompts]
    ids, mask = _sample(policy, tok, prompt_ids, cfg.group_size, cfg.response_length, cfg.seed + 1)
    P = PROMPT_TOKENS
    logratio = (_token_logps(policy, ids, P) - _token_logps(ref, ids, P)).numpy()
    values = _values(value_model, ids, P).numpy()
    mask_np = mask.numpy()
    completions = [tok.decode(row[m], skip_special_tokens=True) for row, m in zip(ids[:, P:], mask)]
    prompts = [tok.decode(list(q)) for q in prompt_ids for _ in range(cfg.group_size)]
    scores = np.asarray(reward(completions, prompts=prompts), dtype=float)

    # PPO's per-token reward (TRL, k1 estimator): the KL penalty at every token, the score at the last
    kl_reward = -cfg.kl_coef * logratio * mask_np
    rewards = kl_reward.copy()
    last = mask_np.sum(1) - 1
    rewards[np.arange(len(rewards)), last] += scores
    advantages = gae(rewards, values * mask_np, mask_np, cfg.gamma, cfg.lam)
    flat = advantages[mask_np]
    # TRL whitens the advantages over the whole batch before the policy loss
    whitened = np.where(mask_np, (advantages - flat.mean()) / (flat.std() + 1e-8), 0.0)
    grpo, _ = group_advantages(scores, cfg.group_size)
    # TRL's RLOO pays the KL per sequence inside the reward before the leave-one-out baseline
    seq_kl = (logratio * mask_np).sum(1)
    _, rloo = group_advantages(scores - cfg.kl_coef * seq_kl, cfg.group_size)

    samples = []
    for i in range(len(completions)):
        n = int(mask_np[i].sum())
        token_ids = ids[i, P:P + n].tolist()
        samples.append({
            "group": i // cfg.group_size, "prompt": prompts[i], "completion": completions[i],
            "tokens": [tok.decode([t]) for t in token_ids],
            "score": round(float(scores[i]), 4),
            "logratio": _r(logratio[i, :n]), "rewards": _r(rewards[i, :n]), "values": _r(values[i, :n]),
            "gae": _r(advantages[i, :n]), "gae_whitened": _r(whitened[i, :n]),
            "returns": _r(advantages[i, :n] + values[i, :n]),
            "grpo": round(float(grpo[i]), 4), "rloo": round(float(rloo[i]), 4),
        })
    # how much of the score the critic predicts at the start and just before the last token
    v_first = values[:, 0]
    v_last = values[np.arange(len(values)), last]
    p(1.0, "done")
    return {
        "lab": NAME, "config": cfg.model_dump(),
        "samples": samples,
        "gamma": cfg.gamma, "lam": cfg.lam, "kl_coef": cfg.kl_coef, "value_init": cfg.value_init,
        "ppo_history": history,
        "summary": {
            "mean_score": round(float(scores.mean()), 4),
            # spread of the advantage inside one completion: PPO's varies, GRPO's/RLOO's is 0 by design
            "gae_within_completion_std": round(float(np.mean([np.std(s["gae"]) for s in samples])), 4),
            "gae_whitened_within_completion_std": round(float(np.mean([np.std(s["gae_whitened"])
                                                                        for s in samples])), 4),
            "value_explained_variance_last": round(_explained_variance(scores, v_last), 4),
            "value_explained_variance_first": round(_explained_variance(scores, v_first), 4),
            "tokens": int(mask_np.sum()),
        },
        "runtime_s": round(p.elapsed(), 2), "timings": p.timings,
    }


def _r(xs, digits: int = 4) -> list[float]:
    return [round(float(x), digits) for x in xs]


def _explained_variance(target: np.ndarray, pred: np.ndarray) -> float:
    var = float(np.var(target))
    return 1.0 - float(np.var(target - pred)) / var if var > 0 else 0.0


def credit_view(prompts: int = 4, group_size: int = 4, seed: int = 0, progress=None, **settings) -> dict:
    """The credit view from a notebook: credit_view(prompts=2, ppo_steps=0)."""
    cfg = make_config(Config, dict(settings, prompts=prompts, group_size=group_size, seed=seed))
    return run(cfg, progress)


# What this lab shows holds by construction: GAE gives every token its own advantage once a critic
# exists, and GRPO's and RLOO's advantages are one number per completion that sum to zero per group
# (identities of their formulas, kept as test assertions). The critic's explained variance is a
# finding of the run, reported on the page, not a published shape.
NOT_CHECKS = [
    "every completion token has a value and a GAE advantage: bookkeeping of the lab's own arrays;",
    "GRPO's and RLOO's advantages sum to zero within a group: an identity of their formulas;",
    "PPO's GAE advantages vary along a completion: true of GAE with any critic that is not constant.",
]
CHECKS: list = []
ILLUSTRATION = ("a view of per-token credit (PPO's GAE from a real TRL run beside GRPO's and RLOO's one number "
                "per completion); what it shows holds by construction, so there is nothing here to reproduce")


def headline(result: dict) -> str:
    return (f"critic explained variance {result['summary']['value_explained_variance_last']:.2f}; "
            f"per-token GAE std within a completion {result['summary']['gae_within_completion_std']:.2f}")
