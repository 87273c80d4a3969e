"""Lab T5: PPO's edge is stability, from near-on-policy data and conservative updates."""

import statistics

import streamlit as st

from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import lab_section

CLAIM = """
**The paper's claim.** Many RL algorithms could optimise a reward model; RLHF settled on PPO because
it is *stable*. PPO only learns from samples of (nearly) the current policy, and its clipped
objective stops each update once the new policy's probability ratio leaves [1−ε, 1+ε]: a cheap trust
region. Take the clip away and a large step can push the policy onto a bad, near-deterministic
answer it never leaves; reuse each batch for many epochs and the updates fit stale data; learn a
Q-function off-policy from a replay buffer and the policy jumps whenever the argmax flips.

Any learner is stable with tiny steps and breaks with huge ones, so one learning rate cannot test
this. Here four Stable-Baselines3 learners (clipped PPO with one epoch, PPO without the clip, clipped
PPO with 4 epochs per batch as TRL runs it, and DQN with replay, a target network and ε-greedy
exploration) write
8-token sequences and get one sequence-level score at the end: the fraction of tokens that follow a
hidden rule. Each learner sweeps a grid of learning rates (DQN the same multiples of its own default
rate), with the same seeds and env steps. The claim, made falsifiable: clipped one-epoch PPO
**works at more of the grid's learning rates** than each of the other three, where *works* means no
seed collapsed and the mean final reward cleared a learning bar.
"""
FORMULA = (r"L^{\mathrm{CLIP}}(\theta) = \hat{\mathbb{E}}_t\Big[\min\big(r_t(\theta)\,\hat A_t,\;"
           r"\operatorname{clip}(r_t(\theta),\,1-\varepsilon,\,1+\varepsilon)\,\hat A_t\big)\Big],"
           r"\qquad r_t(\theta) = \frac{\pi_\theta(a_t\mid s_t)}{\pi_{\theta_{\mathrm{old}}}(a_t\mid s_t)}")
LOOK_FOR = """The first two charts are the test. In *final reward vs learning rate*, a filled marker
is a rate where the learner works; an open one is a rate where a seed collapsed (×) or the mean
stayed below the dashed learning bar. Count the filled markers per colour: the claim is that blue
(clipped PPO) has the most, with ties broken by the fewest collapsed runs over the whole grid
(the verdict above says, check by check, whether that held and what was seen). Look at *where*
each learner fails: at small rates a learner fails by not learning in time (one-epoch PPO is the
slowest there, several epochs on every batch the fastest), at large rates by collapsing (the *seeds that
collapsed* chart). Without the clip (red) PPO is the same algorithm as blue at small rates, so any
difference between them appears at the large rates. Below, pick a position on the grid to see the
runs behind each point: reward curves per seed, KL from the initial policy, and the size of each
update (DQN's ε-greedy policy changes wholesale whenever an argmax flips, about 5 nats per flipped
state). `python scripts/stability_sweep.py` reruns the lab over several replicates and writes every
collapse count and final reward with the commit and the machine."""
DIFFERS = """The "language model" is a small MLP that sees the last token, the position and how many
tokens so far were right (a sufficient statistic of the prefix that a transformer would compute
itself), and there are 16 tokens instead of 50,000. The reward is exact, not a learned reward model, so
there is no reward hacking, and there is no KL penalty to a reference model, which in real RLHF also
holds the policy back (and would hide some of the collapses shown here). Real PPO for LLMs also uses
several epochs (TRL's default is 4, as the stale learner here; up to 8 in the settings) with the clip
and early stopping on KL. The grid has a handful of rates and each point a few seeds, so a single stray
collapse moves a count: read the verdict's k of n over replicates, not one run."""


def _cell(finals: list[float], collapsed: list[bool]) -> str:
    return (f"{statistics.mean(finals):.2f} ± {statistics.pstdev(finals):.2f} "
            f"({sum(collapsed)}/{len(collapsed)} collapsed)")


def draw(result: dict) -> None:
    methods = result["methods"]
    ppo_rates = methods["ppo_clipped"]["learning_rates"]
    dqn_rates = methods["q_learning"]["learning_rates"]
    labels = [f"PPO {p:g} / DQN {q:g}" for p, q in zip(ppo_rates, dqn_rates)]
    figs = figures.stability(result)
    c1, c2 = st.columns(2)
    c1.plotly_chart(figs[0], width="stretch")
    c2.plotly_chart(figs[1], width="stretch")
    rows = []
    for name, m in methods.items():
        row = {"method": name, "works at": f"{sum(m['works'])} of {len(m['works'])} rates"}
        for i, label in enumerate(labels):
            row[label] = _cell(m["final_reward"][i], m["collapsed"][i])
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    cfg = result["config"]
    st.caption(f"{result['steps_per_run']} env steps per run, {cfg['seeds']} seeds per learner and rate. Each cell: "
               f"mean ± std of the final reward over seeds. Works: no seed collapsed and the mean final reward is at "
               f"least {result.get('learn_bar', 0):.2f} ({cfg['learn_share']:.0%} of the way from the uniform "
               f"policy's {result['uniform_reward']:.3f} to 1). Collapsed: the final reward fell below "
               f"{cfg['collapse_fraction']:.0%} of the seed's best, or at least {cfg['locked_share']:.0%} of the "
               f"states it visits put more than 0.99 on a wrong token. Q-learning's policy is its ε-greedy "
               f"behaviour policy; its rates are the PPO rates divided by {cfg['dqn_rate_divisor']:g}.")
    index = st.select_slider("Runs at the learning rates", options=list(range(len(labels))),
                             value=len(labels) - 1, format_func=lambda i: labels[i], key="t5-rate")
    _, _, reward, kl, update_kl = figures.stability(result, index)
    st.plotly_chart(reward, width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(kl, width="stretch")
    c2.plotly_chart(update_kl, width="stretch")
    rows = []
    for name, m in methods.items():
        rows.append({
            "method": name,
            "learning rate": f"{m['learning_rates'][index]:g}",
            "final reward (mean ± std)": _cell(m["final_reward"][index], m["collapsed"][index]),
            "largest drop during training": f"{statistics.mean(m['largest_drop'][index]):.3f}",
            "KL from the initial policy": f"{statistics.mean(m['final_kl'][index]):.2f}",
            "share of visited states locked on a wrong token": f"{statistics.mean(m['locked_share'][index]):.0%}",
        })
    st.dataframe(rows, hide_index=True, width="stretch")


@guarded
def main() -> None:
    st.title("Lab T5 · Why PPO: stability from near-on-policy data and conservative updates")
    lab_section("stability", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)


main()
