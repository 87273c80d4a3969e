"""Lab T1: RLHF is online inverse RL with offline demonstrations (demos -> SFT -> RM -> online RL)."""

import streamlit as st

from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import judge_agreement, lab_section, side_by_side

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
answers and is judged on each. DPO learns from the same pairs directly and never samples. How much
that costs DPO depends on where the pairs come from. With both answers sampled from the starting
policy, the DPO paper found DPO as good as PPO or better on this very task (IMDB sentiment);
with pairs the starting policy would rarely write, Xu et al. 2024 and Tang et al. 2024 found online
RL ahead. So this lab builds both kinds of pairs, 128 each, labelled by the gold judge:
**reference** pairs (two of the starting policy's own answers) and **off-policy** pairs (two pieces
of real review text). In each, small sweeps of DPO and of reward model + GRPO draw reward-KL paths,
and each method's *frontier* is its best checkpoint in each KL bin (0–1, 1–2, 2–4, 4–8, 8–16 nats).
"""
OO_FORMULA = (r"\text{DPO: }-\log\sigma\Big(\beta\log\frac{\pi(y_w|x)}{\pi_{\text{ref}}(y_w|x)}-\beta\log"
              r"\frac{\pi(y_l|x)}{\pi_{\text{ref}}(y_l|x)}\Big)\qquad\text{RLHF: }\max_\pi\ \mathbb E_{y\sim\pi}"
              r"[r_\phi(x,y)]-\beta\,\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})")
OO_LOOK_FOR = """Each chart is one kind of pairs: faint lines are single runs (gold reward against KL from the
start, one point per evaluation), bold lines the frontiers. The bar chart gives online minus DPO on
the frontiers, per prompt and averaged over the bins both reach, with its 95 % interval. The
registered expectation: with reference pairs no online edge (the DPO paper's finding); with
off-policy pairs online ahead, and the gap larger there than with reference pairs. The verdict
says, seed by seed, what came out."""
OO_DIFFERS = """The labeller is the gold reward model, not people, and the same judge scores the result (Gao
et al.'s synthetic setup); the reward model that guides RL learnt only from the pairs. Published
comparisons start from an SFT model, use thousands of pairs and tune each method far longer; here
each run takes the same few dozen steps of 16, and each sweep has two settings."""


def draw_offline_online(result: dict) -> None:
    f_ref, f_off, f_gap = figures.offline_online(result)
    side_by_side(f_ref, f_off)
    st.plotly_chart(f_gap, width="stretch")
    rows = []
    for condition, pairs in result["pairs"].items():
        rm = result["reward_model"][condition]
        rows.append({"pairs": condition, "count": pairs["count"], "mean gold gap in a pair": pairs["mean_gold_gap"],
                     "reward model's accuracy on the policy's own pairs": rm["held_out_pair_accuracy"],
                     "example (chosen)": pairs["examples"][0]["prompt"] + " " + pairs["examples"][0]["chosen"]})
    st.dataframe(rows, hide_index=True, width="stretch")


@guarded
def main() -> None:
    st.title("Lab T1 · The RLHF pipeline is online inverse RL")
    lab_section("pipeline", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)
    st.divider()
    st.header("Offline vs online: DPO and reward model + RL on the same pairs, from two sources")
    lab_section("offline_online", claim=OO_CLAIM, formula=OO_FORMULA, look_for=OO_LOOK_FOR, differs=OO_DIFFERS,
                draw=draw_offline_online)


main()
