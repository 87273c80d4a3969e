"""Lab T1: RLHF is online inverse RL with offline demonstrations (demos -> SFT -> RM -> online RL)."""

import streamlit as st

from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import judge_agreement, lab_section

CLAIM = """
**The paper's claim.** RLHF is not "RL from scratch": it is *inverse* RL from offline data, done
online. The demonstrations (here: positive IMDB reviews) train a behaviour-cloning policy (SFT). The
preference pairs train a reward model: the reward is *inferred* from data, which is inverse RL. Then
the policy is improved online against that inferred reward. The "environment" is known exactly (the
model appends one token), so no dynamics model is needed and the policy can be rolled out as often as
we like; that online access is what behaviour cloning lacks (see T2). This lab runs the pipeline and
compares the three policies on a held-out **gold** reward model that no stage ever optimised.
"""
FORMULA = r"\underbrace{\mathcal D_{\text{demo}}}_{\text{positive reviews}}\xrightarrow{\text{SFT}}\pi_{\text{SFT}}\qquad \underbrace{\mathcal D_{\text{pref}}}_{(y_w \succ y_l)}\xrightarrow{\;-\log\sigma(r(y_w)-r(y_l))\;} r_\phi\qquad \max_\pi\ \mathbb E_{y\sim\pi}[r_\phi(y)]-\beta\,\mathrm{KL}(\pi\,\|\,\pi_{\text{SFT}})"
LOOK_FOR = """The verdict tests two steps, each on the same held-out prompts for every policy (a paired
comparison with a 95 % interval): SFT above the base model on the gold judge, and RLHF above SFT.
When both hold, the gold bars climb from base to SFT to RLHF: SFT writes more positive reviews than
the base model, and RL against the learned reward goes further *from the same demonstrations and
preference data*. When an interval includes 0, the page says so: that step was not resolved. RLHF also travels furthest from the base model (the KL
panel): the gold reward is bought with distance. Raise `rl_steps` or lower `kl_coef` to go further,
and watch T3 for what happens when the reward model is pushed too far. Set `sft_demos` and `rm_pairs`
above 0 to redo those stages live with TRL's SFTTrainer and RewardTrainer instead of the embedded
artifacts."""
DIFFERS = """The "humans" are IMDB star ratings, and the gold judge is another reward model, not people:
it learnt from its own half of the training reviews (the reward model here never saw any of them),
with its own seed, initialised from the SFT policy. The policy is a 1.35M-parameter GPT-2, so the samples read like reviews
but invent words; its SFT and reward model come from the embedded zoo (built by `python -m
rlhf_core.zoo build` with the same TRL trainers) unless you ask for live stages. InstructGPT also
runs SFT on human-written answers to prompts, not on unprompted text."""


def draw(result: dict) -> None:
    f1, f2, f3 = figures.pipeline(result)
    c1, c2 = st.columns(2)
    c1.plotly_chart(f1, width="stretch")
    c2.plotly_chart(f2, width="stretch")
    pol = result["policies"]
    judge_agreement()
    st.dataframe([{"policy": n, "gold reward": round(pol[n]["gold"], 3), "± (2 s.e.)": round(2 * pol[n]["gold_sem"], 3),
                   "reward-model score": round(pol[n]["proxy"], 3), "KL from base (nats)": round(pol[n]["kl"], 2)}
                  for n in ("base", "sft", "rlhf")], hide_index=True, width="stretch")
    st.markdown("**The stages as run**")
    stages = result["stages"]
    st.markdown(
        f"1. Demonstrations: {stages['demonstrations']['kind']}.\n"
        f"2. SFT: {stages['sft']['source']} ({stages['sft']['demonstrations']} demonstrations).\n"
        f"3. Preference pairs: {stages['preference_pairs']['kind']}.\n"
        f"4. Reward model: {stages['reward_model']['source']}, held-out pair accuracy "
        f"{stages['reward_model']['held_out_accuracy_here']:.1%} here.\n"
        f"5. Online RL: {stages['rl']['algorithm'].upper()}, {stages['rl']['steps']} steps, β = {stages['rl']['kl_coef']}.")
    st.plotly_chart(f3, width="stretch")
    st.markdown("**Samples on the same held-out prompts** (gold score in brackets)")
    cols = st.columns(3)
    for col, name in zip(cols, ("base", "sft", "rlhf")):
        col.markdown(f"**{name}**")
        for s in result["samples"][name]:
            col.caption(f"*{s['prompt']}*{s['completion']}  [{s['gold']:+.2f}]")


OO_CLAIM = """
**Offline vs online, on the same preferences.** The "online" in online inverse RL is the point: a
reward model learnt from the preference pairs can score *any* answer, so RL keeps sampling its own
answers and is judged on each. DPO learns from the same pairs directly and never samples: it only
ever sees the answers in the pairs. SFT on the preferred answers does not even see the rejected ones.
This lab gives all three the same budget of gold-labelled pairs and reads the gold judge where each
has moved equally far (KL) from the starting policy. Published results disagree: Rafailov et al.
2023 found DPO ahead of PPO on this very task (IMDB sentiment, GPT-2); Xu et al. 2024 ("Is DPO
superior to PPO for LLM alignment?") and Tang et al. 2024 (compared at equal KL) found online RL
ahead.
"""
OO_FORMULA = r"	ext{DPO: }-\log\sigma\Big(eta\log	frac{\pi(y_w|x)}{\pi_{	ext{ref}}(y_w|x)}-eta\log	frac{\pi(y_l|x)}{\pi_{	ext{ref}}(y_l|x)}\Big)\qquad	ext{RLHF: }\max_\pi\ \mathbb E_{y\sim\pi}[r_\phi(x,y)]-eta\,\mathrm{KL}(\pi\,\|\,\pi_{	ext{ref}})"
OO_LOOK_FOR = """The left chart draws each method's path: gold reward against KL from the start, one point
per evaluation. A path above another at the same KL buys more gold reward for the same distance.
The verdict reads the paths at the largest KL both compared methods reach (per prompt, linear
between evaluations) and asks for the paired gain over the held-out prompts to be above 0 with 95 %
confidence: online RLHF above DPO, and DPO above SFT. Watch DPO's path: with few pairs it often
peaks early and turns back as it fits the pairs ever harder, while the online run keeps finding new
answers the reward model likes (and, pushed far, answers it only *seems* to like: see T3)."""
OO_DIFFERS = """The labeller is the gold reward model, not people, and the same judge scores the result (Gao
et al.'s synthetic setup); the reward model that guides RL learnt only from the pairs. The pairs are
two answers of the tiny starting policy to a review opening, so both are often poor and the gold
gap between them is small. Published comparisons start from an SFT model and tune each method far
longer; here each gets the same number of steps of 16 and its own learning rate."""


def draw_offline_online(result: dict) -> None:
    f1, f2 = figures.offline_online(result)
    c1, c2 = st.columns(2)
    c1.plotly_chart(f1, width="stretch")
    c2.plotly_chart(f2, width="stretch")
    rm = result["reward_model"]
    st.caption(f"{result['pairs']['count']} gold-labelled pairs (mean gold gap {result['pairs']['mean_gold_gap']:.2f}); "
               f"the reward model learnt from them agrees with the gold judge on {rm['held_out_pair_accuracy']:.0%} "
               f"of {rm['held_out_pairs']} held-out pairs.")
    cols = st.columns(3)
    for col, (method, path) in zip(cols, result["paths"].items()):
        last = path[-1]
        col.markdown(f"**{method}**, step {last['step']}: gold {last['gold']:+.2f}, KL {last['kl']:.1f}")
        col.caption(f"*{last['sample']['prompt']}*{last['sample']['completion']}  [{last['sample']['gold']:+.2f}]")


@guarded
def main() -> None:
    st.title("Lab T1 · The RLHF pipeline is online inverse RL")
    lab_section("pipeline", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)
    st.divider()
    st.header("Offline vs online: DPO, reward model + RL, and SFT on the same pairs")
    lab_section("offline_online", claim=OO_CLAIM, formula=OO_FORMULA, look_for=OO_LOOK_FOR, differs=OO_DIFFERS,
                draw=draw_offline_online)


main()
