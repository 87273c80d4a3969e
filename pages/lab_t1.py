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


@guarded
def main() -> None:
    st.title("Lab T1 · The RLHF pipeline is online inverse RL")
    lab_section("pipeline", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)


main()
