"""Lab T5: PPO's edge is stability, from near-on-policy data and conservative updates."""

import statistics

import streamlit as st

from rlhf_core.labs import figures
from ui.common import guarded
from ui.labs import lab_section

CLAIM = """
**The paper's claim.** Many RL algorithms could optimise a reward model; RLHF settled on PPO because
it is *stable*. PPO only learns from samples of (nearly) the current policy, and its clipped
objective stops each update once the new policy's probability ratio leaves [1−ε, 1+ε]: a cheap trust
region. Take the clip away and a large step can push the policy onto a bad, near-deterministic
answer it never leaves; reuse each batch for many epochs and the updates fit stale data; learn a
Q-function off-policy from a replay buffer and the policy jumps whenever the argmax flips. Here four
Stable-Baselines3 learners (clipped PPO with one epoch, PPO without the clip, PPO with 8 epochs per
batch, and DQN) write 8-token sequences and get one sequence-level score at the end: the fraction of
tokens that follow a hidden rule. All get the same env steps, learning rate and networks, and the
learning rate is deliberately aggressive.
"""
FORMULA = (r"L^{\mathrm{CLIP}}(\theta) = \hat{\mathbb{E}}_t\Big[\min\big(r_t(\theta)\,\hat A_t,\;"
           r"\operatorname{clip}(r_t(\theta),\,1-\varepsilon,\,1+\varepsilon)\,\hat A_t\big)\Big],"
           r"\qquad r_t(\theta) = \frac{\pi_\theta(a_t\mid s_t)}{\pi_{\theta_{\mathrm{old}}}(a_t\mid s_t)}")
LOOK_FOR = """The blue band (clipped PPO) rises steadily and stays narrow: seeds end near the top and
none collapses. The red one (no clip) climbs faster at first, then its seeds freeze onto wrong tokens
(× markers; in the table, most visited states locked on a wrong token: an on-policy learner that never
samples the right token can no longer learn it). Orange (8 epochs on every batch) learns fastest of
all for the first 2,000 steps, then plateaus and wobbles below blue. In the KL charts, red and orange
leap away from the initial policy in the first 2,000 steps while blue moves there gradually, about
0.2 nats per checkpoint interval against 1-2 for the others: that is the conservative update. Purple
(Q-learning) learns slowly at this learning rate and its ε-greedy policy changes wholesale whenever an
argmax flips (about 5 nats per flipped state in the update-size chart). Lower the learning rate to
0.003 and the three PPO variants all become stable (8 epochs then simply learn fastest): the edge of
the clip shows when steps are large. With 3 seeds the spread of final rewards is noisy (over 15 seeds
clipped PPO's was the lowest, ±0.09 against ±0.12 to ±0.25); the collapse counts differ clearly
every time."""
DIFFERS = """The "language model" is a small MLP that sees the last token, the position and how many
tokens so far were right (a sufficient statistic of the prefix that a transformer would compute
itself), and there are 16 tokens instead of 50,000. The reward is exact, not a learned reward model, so
there is no reward hacking, and there is no KL penalty to a reference model, which in real RLHF also
holds the policy back (and would hide some of the collapses shown here). Real PPO for LLMs also uses
several epochs (TRL's default is 4) with the clip and early stopping on KL; the 8-epoch variant here
is the stale extreme. The learning rate was chosen to be aggressive for this task; the shape needs
it."""


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def draw(result: dict) -> None:
    reward, kl, update_kl, finals, collapsed = figures.stability(result)
    st.plotly_chart(reward, width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(finals, width="stretch")
    c2.plotly_chart(collapsed, width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(kl, width="stretch")
    c2.plotly_chart(update_kl, width="stretch")
    rows = []
    for name, m in result["methods"].items():
        rows.append({
            "method": name,
            "final reward (mean ± std)": _mean_std(m["final_reward"]),
            "collapsed seeds": f"{sum(m['collapsed'])}/{len(m['collapsed'])}",
            "largest drop during training": f"{statistics.mean(m['largest_drop']):.3f}",
            "KL from the initial policy": f"{statistics.mean(m['final_kl']):.2f}",
            "share of visited states locked on a wrong token": f"{statistics.mean(m['locked_share']):.0%}",
        })
    st.dataframe(rows, hide_index=True, width="stretch")
    cfg = result["config"]
    st.caption(f"{result['steps_per_run']} env steps per run, learning rate {cfg['learning_rate']}, "
               f"{cfg['seeds']} seeds per method. Collapsed: the final reward fell below "
               f"{cfg['collapse_fraction']:.0%} of the seed's best, or at least {cfg['locked_share']:.0%} of the "
               f"states it visits put more than 0.99 on a wrong token. Q-learning's policy is its ε-greedy "
               f"behaviour policy.")


@guarded
def main() -> None:
    st.title("Lab T5 · Why PPO: stability from near-on-policy data and conservative updates")
    lab_section("stability", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)


main()
