"""Lab T2: RLHF beats SFT because online imitation avoids behaviour cloning's compounding error."""

import streamlit as st

from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import lab_section

CLAIM = """
**The paper's claim.** SFT is behaviour cloning: it learns the expert's next token only on the
states the demonstrations visit. One slip puts the model in a state no demonstration covered, where
it slips again, and the errors compound: Ross & Bagnell bound the mistakes over a horizon T by
O(εT²). RLHF, like DAgger-style imitation and inverse RL, learns from the model's *own* rollouts,
so it also learns how to recover and its mistakes grow like O(εT). Here a hidden automaton emits
the expert's tokens; the first "away" token switches it to a second rule that demonstrations never
show. Both learners are the same tiny GPT-2 trained with TRL's `SFTTrainer`, and both slip with the
same probability ε; only the online learner also trains on its own relabelled rollouts.
"""
FORMULA = r"J(\hat\pi_{\mathrm{BC}}) \le J(\pi^*) + \varepsilon T^2 \qquad\text{vs}\qquad J(\hat\pi_{\mathrm{online}}) \le J(\pi^*) + O(\varepsilon T)"
LOOK_FOR = """The red curve (behaviour cloning) bends upward and hugs the dashed c·ε·T² curve, while
the blue one (online learner) stays close to a straight c·ε·T line. The first-mistake histograms look
alike, since both slip at the same rate; the difference is what comes after: BC's per-position error
rate climbs with the position (it rarely recovers once off the demonstrations' states) while the
online learner's stays near ε. BC is perfect on the demonstrations' own states (see the accuracy
below), so more SFT would not help. Raise ε or T to widen the gap; try `demos` and model size to
see that they do not close it."""
DIFFERS = """The automaton is tiny and its rule is exact, so "mistake" is well defined, the expert
can be queried on any state (as DAgger needs), and a slip is injected as a random token. A real
LLM's demonstrations are human text: nobody can relabel its own rollouts token by token, which is
why RLHF learns a reward model and runs RL instead of DAgger. The T vs T² shape is the same argument."""


def draw(result: dict) -> None:
    f1, f2, f3 = figures.compounding_error(result)
    st.plotly_chart(f1, width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(f2, width="stretch")
    c2.plotly_chart(f3, width="stretch")
    bc, on = result["bc"], result["online"]
    c = st.columns(4)
    c[0].metric(f"BC mistakes at T={result['horizons'][-1]}", f"{result['bc_mistakes'][-1]:.2f}")
    c[1].metric(f"online mistakes at T={result['horizons'][-1]}", f"{result['online_mistakes'][-1]:.2f}")
    c[2].metric("recovery after a mistake (BC → online)",
                f"{(bc['recovery_rate'] or 0):.0%} → {(on['recovery_rate'] or 0):.0%}")
    c[3].metric("BC accuracy on the demos' own states", f"{bc['demo_state_accuracy']:.1%}")
    st.caption("DAgger rounds, mistakes per rollout of the learner's own data: "
               + " → ".join(f"{x:.2f}" for x in result["dagger_curve"]))


@guarded
def main() -> None:
    st.title("Lab T2 · Compounding error: behaviour cloning vs online imitation")
    lab_section("compounding_error", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)


main()
