"""Lab T5: PPO's edge is stability, from near-on-policy data and conservative updates."""

import statistics

import streamlit as st

from rlhf_core.labs import stability
from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import lab_section

CLAIM = """
**The paper's claim.** RLHF settled on PPO for its *stability*, "gained from (almost) on-policy data
and conservative policy updates". Each half shows only under its own condition. The clip keeps each
update inside [1−ε, 1+ε] of the policy that sampled the batch, so it can only matter when a batch is
*reused*: with one gradient step per batch the ratio is exactly 1 and the clip does nothing. And
on-policy data matters only against data sampled by *older* policies.

So PPO learners (Stable-Baselines3) write 8-token sequences and get one sequence-level score at the
end. Clipped and unclipped PPO each fit every batch for K = 1, 4 and 10 epochs of 8 minibatches
(Schulman et al. used 10), plus a null pair with a single gradient step per batch, plus clipped PPO
that fits each fresh batch together with the 3 batches before it (as many gradient steps as K = 4, on
older data), and DQN (off-policy, value-based) beside one-epoch clipped PPO on 16 tokens and on 64. Every arm sweeps the same learning rates over two decades;
gradient-norm clipping is off, since it can stand in for the ratio clip (Engstrom et al. 2020).
An arm's **stable band** is the number of rates where none of its seeds collapsed.
"""
FORMULA = (r"L^{\mathrm{CLIP}}(\theta) = \hat{\mathbb{E}}_t\Big[\min\big(r_t(\theta)\,\hat A_t,\;"
           r"\operatorname{clip}(r_t(\theta),\,1-\varepsilon,\,1+\varepsilon)\,\hat A_t\big)\Big],"
           r"\qquad r_t(\theta) = \frac{\pi_\theta(a_t\mid s_t)}{\pi_{\theta_{\mathrm{old}}}(a_t\mid s_t)}")
LOOK_FOR = """The first two charts are the test. In *final reward vs learning rate* a filled
marker is a rate where the arm learns without a collapse, an open one where a seed collapsed (×) or
the mean stayed below the dashed learning bar; *seeds that collapsed* shows where each band ends.
Compare the blues (clipped) with the reds (unclipped) at the same darkness (the same K): with one
epoch they are close, with 10 the reds collapse from a lower rate on, while the blues hold. The two
greys (one gradient step per batch) lie on top of each other: there the clip cannot act. Orange
(replayed older batches) against the middle blue (K = 4, the same gradient steps on fresh data) is
the on-policy half of the claim. DQN (purple) is expected to tie PPO on 16 tokens and to fall behind
on 64 (dark purple against cyan). Below, pick a rate to see the runs: reward per seed, KL from the
initial policy, and the size of each update; unclipped updates are larger before they collapse.
The verdict above lists each registered check and what each seed showed."""
DIFFERS = """The "language model" is a small MLP that sees the last token, the position and how many
tokens so far were right (a sufficient statistic of the prefix that a transformer would compute
itself), and there are 16 tokens instead of 50,000. The reward is exact, not a learned reward model, so
there is no reward hacking, and there is no KL penalty to a reference model, which in real RLHF also
holds the policy back (and would hide some of the collapses shown here). Real PPO for LLMs also uses
several epochs (TRL's default is 4) with the clip, often with gradient clipping and early stopping
on KL, each of which narrows the gap shown here. The grid has a handful of rates and each point a few seeds, so a single stray
collapse moves a count: read the verdict's k of n over replicates, not one run."""


def _cell(finals: list[float], collapsed: list[bool]) -> str:
    return (f"{statistics.mean(finals):.2f} ± {statistics.pstdev(finals):.2f} "
            f"({sum(collapsed)}/{len(collapsed)} collapsed)")


def draw(result: dict) -> None:
    methods = result["methods"]
    ppo_rates = methods["clip_k1"]["learning_rates"]
    if "q_learning" in methods:
        labels = [f"PPO {p:g} / DQN {q:g}" for p, q in zip(ppo_rates, methods["q_learning"]["learning_rates"])]
    else:
        labels = [f"PPO {p:g}" for p in ppo_rates]
    figs = figures.stability(result)
    c1, c2 = st.columns(2)
    c1.plotly_chart(figs[0], width="stretch")
    c2.plotly_chart(figs[1], width="stretch")
    rows = []
    for name, m in methods.items():
        row = {"arm": name, "role": m["arm"]["role"],
               "stable at": f"{stability.band(result, name)} of {len(m['works'])} rates"}
        for i, label in enumerate(labels):
            row[label] = _cell(m["final_reward"][i], m["collapsed"][i])
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    cfg = result["config"]
    st.caption(f"{result['steps_per_run']} env steps per run, {cfg['seeds']} seeds per learner and rate. Each cell: "
               f"mean ± std of the final reward over seeds. Stable: no seed collapsed there. Filled markers: stable and "
               f"the mean final reward is at least {result.get('learn_bar', 0):.2f} ({cfg['learn_share']:.0%} of the way from the uniform "
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
            "arm": name,
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
