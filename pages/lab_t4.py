"""Lab T4: a vocabulary-sized action space and one reward per sequence make policy learning hard."""

import streamlit as st

from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import lab_section

CLAIM = """
**The paper's claim.** Seen as RL, a language model picks one of V tokens (tens of thousands) at every
step and usually gets one reward for the whole sequence, at the end. Both make policy learning hard.
A policy that knows nothing finds the right token with probability 1/V, so it needs about V tries per
state before it ever sees a success to learn from; and a single sequence-level reward does not say
which tokens earned it, so every token of a good sequence is pushed up, the wrong ones too (the credit
assignment problem). That is why RLHF starts from a pretrained, supervised policy that already puts
its mass on a few plausible tokens. Here a hidden rule says which token is right after each token;
the rollouts that matter stay on a cycle of 4 tokens while the vocabulary V grows from 8 to 1,024. Two
policy-gradient learners start from the uniform policy with the same seeds, batches and learning rate;
one is told after every token whether it was right (dense), the other only gets the fraction of right
tokens once, at the end (sparse, GRPO's sequence-level advantage).
"""
FORMULA = (r"\Pr[\text{right token}\mid\text{uniform policy}] = \tfrac1V \;\Rightarrow\; \text{tries} \approx V,"
           r"\qquad A^{\text{dense}}_{i,t} = \frac{r_{i,t}-\bar r}{\sigma_r}\quad\text{vs}\quad"
           r"A^{\text{sparse}}_{i,t} = \frac{R_i-\bar R}{\sigma_R},\;\; R_i = \tfrac1T\textstyle\sum_t r_{i,t}")
LOOK_FOR = """On the log-log chart both lines climb with V, close to the dashed least-squares c·V fits (the
power-law fit's exponent is printed in the legend, a little under 1): each 4× more tokens costs about
3-4× more steps, because the learner must first stumble on a token it has a 1/V chance to pick. The
red line (sparse reward) lies above the blue one (dense) at every V: about twice the steps for the
same result, a gap of about ten steps at V=8 and of hundreds at V=1,024. (The ratio does not grow
with V; the gap in steps does.) The learning curves show
why: both sit near zero while they search, then climb; the dashed sparse curves climb later and
slower because a lucky right token shares its sequence's reward with 7 wrong ones. Raise the
`learning rate` in More settings to 10: the dense learner gets faster still, while the sparse one
locks onto wrong tokens its lucky sequences rewarded and some seeds never reach the threshold (drawn
as hollow triangles at the step cap). A longer `horizon` dilutes the sparse reward further: at 12
tokens the sparse learner needs about 3× the dense one's steps on small vocabularies, at 4 tokens
under 2×."""
DIFFERS = """The policy is a table of logits, one row per previous token, starting uniform: it has no
pretraining and no generalisation between tokens, so nothing but trial and error can find a right token.
A real LLM starts from a pretrained and supervised model whose top few tokens are usually sensible,
which is exactly how RLHF gets around the 1/V problem; its vocabulary (~50,000) is far beyond what a
CPU lab can sweep. The rule here depends only on the previous token and the reward is exact. Dense
per-token rewards do not fit TRL's trainers (one scalar per sequence), so this lab uses a few lines of
hand-written REINFORCE with GRPO-style normalisation instead of TRL."""

CREDIT_CLAIM = """
#### Per-token credit on the real playground policy
With one reward per completion, an algorithm must decide how much of it each token earned. **PPO**
learns a value function V(s_t) (the expected reward from a prefix) and gives every token its own
advantage by generalised advantage estimation: tokens after which the value jumps get credit,
tokens after which it drops get blame. **GRPO** and **RLOO** learn no critic: every token of a
completion gets the same number, its reward relative to the other completions of the same prompt.
Here a short real PPO run with the playground's engine (TRL's PPOTrainer on `imdb-tiny`, the value
model initialised from the reward model `learned-rm`) trains the critic; then fresh completions of
held-out prompts are scored, and the same completions are shown with PPO's per-token advantages and
with GRPO's and RLOO's one number each.
"""
CREDIT_FORMULA = (r"\hat A_t = \sum_{l\ge0}(\gamma\lambda)^l\,\delta_{t+l},\quad \delta_t = r_t + \gamma V(s_{t+1})"
                  r" - V(s_t),\quad r_t = -\beta\log\tfrac{\pi(y_t\mid s_t)}{\pi_{\mathrm{ref}}(y_t\mid s_t)}"
                  r" + [t=T]\,R\qquad A^{\mathrm{GRPO}}_i = \frac{R_i-\operatorname{mean}_j R_j}"
                  r"{\operatorname{std}_j R_j},"
                  r"\quad A^{\mathrm{RLOO}}_i = R_i - \tfrac{1}{G-1}\textstyle\sum_{j\ne i} R_j")
CREDIT_LOOK_FOR = """In the PPO heat map the colour changes along a row: a completion with a low score can
still have tokens with positive advantage (where the critic's estimate went up) and vice versa. In the
GRPO and RLOO maps each row is one flat colour, and each prompt's rows balance out to zero. In the
detail chart, follow the green value line: each bar (the token's advantage) is roughly the reward
plus the next value minus this value, summed with decay λ from there on. Sometimes GRPO and PPO
disagree in sign: a completion that beat its siblings (positive group advantage) can still score
below what the critic expected from its prompt. Set `ppo_steps` to 0 to see the critic straight
from the reward model, `value_init` to policy for TRL's default (a fresh head: after a short run
the critic barely predicts the score, its explained variance near or below 0, so each row is mostly
the final score fading with λ, plus noise), or `lam` to 1 and 0 for the two extremes."""
CREDIT_DIFFERS = """The policy and the critic are 1.4M-parameter models and the PPO run is a few steps
long, so the critic is rough and the completions are barely fluent. Initialising the value model from
the reward model is common practice (InstructGPT did it) but not TRL's default. The KL penalty is
per token here, as in TRL's PPO; the score is added at the completion's last token (TRL adds it one
step after an EOS, a detail that does not change the picture)."""


def draw(result: dict) -> None:
    steps, curves, ratio = figures.action_space(result)
    st.plotly_chart(steps, width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(curves, width="stretch")
    c2.plotly_chart(ratio, width="stretch")
    vocab = result["vocab"]
    fits = result["fits"]
    c = st.columns(4)
    c[0].metric(f"dense: steps at V={vocab[-1]}", _steps(result["dense_steps"][-1], result["step_cap"]))
    c[1].metric(f"sparse: steps at V={vocab[-1]}", _steps(result["sparse_steps"][-1], result["step_cap"]))
    for col, g in ((c[2], "dense"), (c[3], "sparse")):
        power = fits[g].get("power")
        col.metric(f"{g}: steps grow like V^k, k =", f"{power['exponent']:.2f}" if power else "n/a")
    rows = []
    for i, v in enumerate(vocab):
        row = {"V": v, "1/V": f"{1 / v:.4f}"}
        for g in ("dense", "sparse"):
            seeds = result["per_seed"][g]["steps"][i]
            row[f"{g} steps per seed"] = ", ".join("not reached" if s is None else str(s) for s in seeds)
        row["sparse ÷ dense"] = result["sparse_over_dense"][i]
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    cfg = result["config"]
    st.caption(f"{result['tokens_per_step']} tokens per step ({cfg['batch']} sequences × {cfg['horizon']} tokens); "
               f"success = {result['threshold']:.0%} right tokens in one step's sampled batch; medians over "
               f"{cfg['seeds']} seeds; a run that never gets there within {result['step_cap']} steps counts as "
               "more than the cap.")


def _steps(value, cap) -> str:
    return f"> {cap} (not reached)" if value is None else f"{value:g}"


def draw_credit(result: dict) -> None:
    ppo, grpo, rloo, _ = figures.credit(result)
    st.plotly_chart(ppo, width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(grpo, width="stretch")
    c2.plotly_chart(rloo, width="stretch")
    samples = result["samples"]
    pick = st.selectbox("Completion to inspect", list(range(len(samples))), key="credit-sample",
                        format_func=lambda i: f"#{i} (prompt {samples[i]['group']}, score {samples[i]['score']:+.2f}): "
                                              f"{samples[i]['completion'][:60]}")
    st.plotly_chart(figures.credit(result, sample=pick)[3], width="stretch")
    s = result["summary"]
    c = st.columns(3)
    c[0].metric("mean score of the shown completions", f"{s['mean_score']:+.2f}")
    c[1].metric("advantage spread inside a completion (PPO → GRPO)", f"{s['gae_within_completion_std']:.2f} → 0")
    c[2].metric("critic's explained variance of the score (last token)", f"{s['value_explained_variance_last']:.2f}")
    hist = result["ppo_history"]
    if hist["step"]:
        st.caption("Short PPO run, mean score per step: " + " → ".join(
            f"{x:+.2f}" for x in hist["reward"] if x is not None) + f" (γ={result['gamma']}, λ={result['lam']}, "
            f"β={result['kl_coef']}, value model from {result['value_init']}).")


@guarded
def main() -> None:
    st.title("Lab T4 · Action space & sparse reward: why RL on a language model is hard")
    lab_section("action_space", claim=CLAIM, formula=FORMULA, look_for=LOOK_FOR, differs=DIFFERS, draw=draw)
    st.divider()
    lab_section("credit", claim=CREDIT_CLAIM, formula=CREDIT_FORMULA, look_for=CREDIT_LOOK_FOR,
                differs=CREDIT_DIFFERS, draw=draw_credit)


main()
