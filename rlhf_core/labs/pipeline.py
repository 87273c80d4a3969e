"""T1 lab `pipeline`: RLHF as online inverse RL with offline demonstrations.

Paper claim (Sun 2023, takeaway 1): RLHF = demonstrations -> SFT (behaviour cloning) -> preference
pairs -> a reward model (inferring the reward from data: inverse RL) -> online RL against that
reward. The dynamics are known (the model appends a token), so no environment model is needed and
the policy can be rolled out as often as we like: the "online" part that behaviour cloning lacks.

Stages here, on the IMDB policy:
1. demonstrations: positive training reviews;
2. SFT: `imdb-tiny-sft-positive` (built by `zoo build` with TRL's SFTTrainer on 6,000 positive
   reviews) or, with `sft_demos > 0`, a fresh SFT of imdb-tiny on that many reviews, run here;
3. preference pairs: (positive, negative) review endings, labelled by the IMDB star ratings;
4. reward model: `learned-rm` (RewardTrainer on 5,000 pairs) or, with `rm_pairs > 0`, one trained here;
5. online RL: GRPO (the playground's engine) from the SFT policy against that reward model.
Then base, SFT and RLHF policies are compared on held-out prompts by the independent *gold* judge
(`gold-rm`: its own half of the training reviews, disjoint from the reward model's, its own seed
and initialisation; never optimised against) and by KL from the base model. Every policy answers
the same prompts, so each comparison is paired by prompt, with a 95 % confidence interval.
Expected (Stiennon et al. 2020; Ouyang et al. 2022): SFT beats the base model, and RLHF beats SFT.
"""

from __future__ import annotations

import statistics

from .support import imdb
from .support.common import Progress, LabConfig, knob, lab_scratch_dir, paired_ci
from .support.verdict import Check

NAME = "pipeline"


class Config(LabConfig):
    rl_steps: int = knob(25, "Online RL steps (GRPO, 16 completions each) against the reward model.", lo=5, hi=48)
    kl_coef: float = knob(0.05, "beta: KL penalty to the SFT policy during RL.", lo=0.0, hi=1.0)
    learning_rate: float = knob(3e-4, "RL learning rate.", lo=1e-5, hi=3e-3)
    sft_demos: int = knob(0, "0 = the embedded SFT policy (6,000 demos); N = run SFT here on N positive reviews.",
                          lo=0, hi=640)
    rm_pairs: int = knob(0, "0 = the embedded reward model (5,000 pairs); N = train one here on N pairs.",
                         lo=0, hi=600)
    eval_prompts: int = knob(48, "Held-out prompts for the comparison (paired: every policy answers each).",
                             lo=8, hi=96, advanced=True)
    samples_per_prompt: int = knob(8, "Completions per prompt and policy in the comparison.", lo=1, hi=16,
                                   advanced=True)
    seed: int = knob(0, "Seed for data, training and sampling.", lo=0, hi=2**31 - 1, advanced=True)
    threads: int = knob(1, "torch CPU threads.", lo=0, hi=64, advanced=True)


QUICK = {"rl_steps": 20}
LARGEST = {"rl_steps": 48, "sft_demos": 640, "rm_pairs": 600, "eval_prompts": 96, "samples_per_prompt": 16}


def _sft(tok, demos: list[str], seed: int):
    """SFT (behaviour cloning) of imdb-tiny on demonstrations with TRL's SFTTrainer."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ..worker import _quiet_trainer

    base, _ = imdb.load_policy("imdb-tiny")
    args = SFTConfig(output_dir=lab_scratch_dir(NAME), num_train_epochs=1, per_device_train_batch_size=16,
                     learning_rate=5e-4, lr_scheduler_type="constant", warmup_steps=0, report_to=[],
                     save_strategy="no", logging_steps=10_000, seed=seed, use_cpu=True, bf16=False,
                     gradient_checkpointing=False, disable_tqdm=True, max_length=96,
                     dataset_text_field="text")
    trainer = SFTTrainer(model=base, args=args, train_dataset=Dataset.from_dict({"text": demos}),
                         processing_class=tok)
    _quiet_trainer(trainer)
    trainer.train()
    # GRPO rebuilds its reference model from config._name_or_path: give it a folder to reload from
    folder = lab_scratch_dir("sft-policy")
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    fresh, _ = imdb.load_policy(folder)
    return fresh


def run(cfg: Config, progress=None) -> dict:
    p = Progress(progress)
    p(0.0, "setup: loading the policies and the gold judge")
    from .. import zoo
    from ..prompts import prompt_texts

    s = imdb.setup(cfg.threads, cfg.seed)
    base, tok, gold, train_reviews, held_reviews = s.base, s.tok, s.gold, s.train_reviews, s.held_reviews
    stages: dict = {}

    positives = [r.text for r in train_reviews if r.positive]
    if cfg.sft_demos:
        p(0.05, f"sft: behaviour cloning on {cfg.sft_demos} positive reviews (SFTTrainer)")
        sft = _sft(tok, positives[:cfg.sft_demos], cfg.seed)
        stages["sft"] = {"source": "trained here", "demonstrations": cfg.sft_demos}
    else:
        sft, _ = imdb.load_policy("imdb-tiny-sft-positive")
        stages["sft"] = {"source": "embedded imdb-tiny-sft-positive",
                         "demonstrations": 6000, **zoo.asset_info("imdb-tiny-sft-positive")}
    stages["demonstrations"] = {"kind": "positive IMDB training reviews", "available": len(positives)}

    held_pairs = imdb.sentiment_pairs(held_reviews, 200, tok, cfg.seed + 1)
    if cfg.rm_pairs:
        p(0.2, f"reward model: RewardTrainer on {cfg.rm_pairs} preference pairs")
        pairs = imdb.sentiment_pairs(train_reviews, cfg.rm_pairs, tok, cfg.seed)
        rm_model = imdb.train_reward_model(pairs, tok, epochs=2, lr=5e-4, seed=cfg.seed)
        stages["reward_model"] = {"source": "trained here", "pairs": cfg.rm_pairs}
    else:
        rm_model, _ = zoo.load_sequence_classifier("learned-rm", "reward model")
        stages["reward_model"] = {"source": "embedded learned-rm", **zoo.asset_info("learned-rm")}
    proxy = imdb.scorer_for(rm_model, tok)
    p(0.3, "reward model: held-out pair accuracy")
    stages["reward_model"]["held_out_accuracy_here"] = round(imdb.pair_accuracy(proxy, held_pairs), 4)
    stages["preference_pairs"] = {"kind": "(positive, negative) review endings of 16-48 tokens"}

    curve = {"step": [], "proxy": [], "kl": []}

    def on_step(step, metrics, roll):
        curve["step"].append(step)
        curve["proxy"].append(metrics["reward"])
        curve["kl"].append(metrics["kl"])
        p(0.35 + 0.45 * step / cfg.rl_steps, f"rl: GRPO step {step}/{cfg.rl_steps} against the reward model")

    p(0.35, "rl: GRPO against the reward model")
    rlhf = imdb.train_grpo(imdb.fresh_copy(sft), tok, proxy, "reward-model", steps=cfg.rl_steps,
                           kl_coef=cfg.kl_coef, learning_rate=cfg.learning_rate, seed=cfg.seed,
                           prompts=prompt_texts(tok, 8, "train", limit=512), on_step=on_step)
    rlhf.eval()
    stages["rl"] = {"algorithm": "grpo", "steps": cfg.rl_steps, "kl_coef": cfg.kl_coef, "curve": curve}

    p(0.82, "eval: sampling the three policies on held-out prompts")
    prompts = prompt_texts(tok, 8, "eval")[:cfg.eval_prompts]
    flat_prompts = [q for q in prompts for _ in range(cfg.samples_per_prompt)]
    policies = {}
    samples = {}
    for name, model in (("base", base), ("sft", sft), ("rlhf", rlhf)):
        comps = [c for group in imdb.sample(model, tok, prompts, cfg.samples_per_prompt, 24, cfg.seed + 7)
                 for c in group]
        gold_scores = imdb.batched(gold, comps)
        proxy_scores = imdb.batched(proxy, comps)
        kls = imdb.sequence_kl(model, base, tok, flat_prompts, comps) if name != "base" else [0.0] * len(comps)
        per_prompt = [statistics.fmean(gold_scores[i:i + cfg.samples_per_prompt])
                      for i in range(0, len(gold_scores), cfg.samples_per_prompt)]
        policies[name] = {
            "gold": statistics.fmean(gold_scores),
            "gold_per_prompt": [round(g, 4) for g in per_prompt],
            "gold_sem": statistics.pstdev(gold_scores) / len(gold_scores) ** 0.5,
            "proxy": statistics.fmean(proxy_scores),
            "kl": statistics.fmean(kls),
        }
        samples[name] = [{"prompt": q, "completion": c, "gold": round(g, 3)}
                         for q, c, g in list(zip(flat_prompts, comps, gold_scores))[::cfg.samples_per_prompt][:6]]
    p(1.0, "done")
    return {"lab": NAME, "config": cfg.model_dump(), "policies": policies, "samples": samples,
            "stages": stages, "runtime_s": round(p.elapsed(), 2), "timings": p.timings}


def _gain(result: dict, better: str, worse: str) -> dict:
    """Gold gain of one policy over another, paired by held-out prompt, with its 95 % interval."""
    pol = result["policies"]
    return paired_ci(pol[better]["gold_per_prompt"], pol[worse]["gold_per_prompt"])


def _beats(better: str, worse: str):
    def test(result: dict) -> str | None:
        g = _gain(result, better, worse)
        if g["low"] > 0:
            return None
        return (f"{better} vs {worse} on the gold judge: {g['mean']:+.3f}, 95 % interval "
                f"[{g['low']:+.3f}, {g['high']:+.3f}] over {g['n']} prompts (not above 0)")
    return test


CHECKS = [
    Check("sft_beats_base", "Behaviour cloning on demonstrations moves the policy towards what the judge rewards: "
          "SFT scores above the base model on the gold judge (95 % interval of the paired gain above 0).",
          "Ouyang et al. 2022 (InstructGPT), Fig. 1: SFT above the pretrained model",
          "The demonstrations may not carry what the judge rewards, or too few prompts resolve the gap; "
          "test: the mean gain shrunk to half its standard error, every prompt's noise kept.",
          _beats("sft", "base")),
    Check("rlhf_beats_sft", "Online RL against a reward model learnt from preference pairs beats SFT on the "
          "independent gold judge (95 % interval of the paired gain above 0).",
          "Stiennon et al. 2020, Fig. 1; Ouyang et al. 2022, Fig. 1",
          "RL can over-optimise an imperfect proxy (T3): the judge then sees no gain, or a loss; test: the "
          "mean gain shrunk to half its standard error, every prompt's noise kept.",
          _beats("rlhf", "sft")),
]


def headline(result: dict) -> str:
    pol = result["policies"]
    return (f"gold: base {pol['base']['gold']:+.2f}, SFT {pol['sft']['gold']:+.2f}, RLHF {pol['rlhf']['gold']:+.2f}; "
            f"KL from base {pol['sft']['kl']:.1f} / {pol['rlhf']['kl']:.1f} nats")
