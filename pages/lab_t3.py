"""Lab T3: the reward model is a cheap proxy of expensive feedback; push it too hard and it breaks."""

import streamlit as st

from rlhf_core.labs.best_of_n import gold_bend
from rlhf_core.labs.overoptimization import peak
from rlhf_core.labs.support import figures
from ui.common import guarded
from ui.labs import lab_section, side_by_side

INTRO = """
**The paper's claim.** Human feedback is expensive, so RLHF pays for a limited number of labels and
learns a reward model from them: a cheap proxy that can score any amount of text. A proxy is only as
good as its labels (a), and an optimiser that leans on it, RL (b) or plain best-of-n sampling (c),
eventually finds what the proxy likes but the humans would not (Gao et al. 2022). The same idea
works for prompts (d): learn from offline logs which prompt suits which query, instead of calling
the model for every candidate. Here embedded judges play the expensive human: `gold-rm` (sentiment)
and, for over-optimisation, gold′ (`gold-prime-rm`), which also sees degenerate text; every proxy
learns from reviews or samples those judges label, never from the judges' own training data.
"""

RM_CURVE = dict(
    claim="#### a) How many labels does a proxy need?\nEach point is a fresh reward model (TRL `RewardTrainer`, "
          "Bradley-Terry loss) trained on *n* (positive, negative) review-ending pairs and scored on held-out pairs.",
    formula=r"\mathcal L(\phi) = -\,\mathbb E_{(y_w, y_l)}\log\sigma\big(r_\phi(y_w) - r_\phi(y_l)\big)",
    look_for="Accuracy starts near chance (0.5) and rises roughly linearly in log n (the dashed fit); the dotted "
             "line shows each model fits its own training pairs far better than held-out ones at small n: "
             "few labels overfit. The diamonds are the embedded reward models (`learned-rm` and the judge `gold-rm`, "
             "trained longer on longer endings by `zoo build`, each on its own half of the reviews).",
    differs="Labels come from star ratings of whole reviews, applied to their endings, so some are noisy; human "
            "comparisons of two answers to one prompt are a different (and noisier) signal.",
)
OVEROPT = dict(
    claim="#### b) Over-optimising a proxy (Gao et al. 2022)\nThe judge here is **gold′**: it learnt its own half of "
          "the reviews *plus* pairs where a natural text beats a corrupted copy of it (words repeated, shuffled, or "
          "the ending run on and on), so it scores degenerate text low. Each proxy learns *n* pairs of two of the "
          "base policy's own completions, labelled by gold′ (Gao's protocol). The base policy rarely degenerates, "
          "so those pairs almost never show the proxy what gold′ dislikes: its blind spot is built in on purpose, "
          "and said so here. GRPO (β = 0, the learning rate climbing) then maximises each proxy; gold′ and the "
          "proxy score fresh samples on held-out prompts at steps 0, 1, 2, 3, 4, 6, 8, 12, … Two more arms: the "
          "earlier design's proxy judged by the judge of its own kind (`gold-rm`), where no fall is expected, and "
          "GRPO on gold′ itself, which must not fall.",
    formula=r"R_{\text{gold}}(d) \approx d\,(\alpha - \beta \log d),\qquad d = \sqrt{\mathrm{KL}(\pi\,\|\,\pi_{\text{init}})}",
    look_for="Every proxy keeps climbing. Gold′ first rises with it, then, for the proxies with few labels, peaks and "
             "falls as the samples turn repetitive: the policy has found what the proxy wrongly likes. Error bars are "
             "±1 SE over the eval prompts; the checks ask for a fall of more than 2 SE. More labels should peak later "
             "or not at all. The dotted arm (the correlated judge) shows why the earlier version of this lab saw no "
             "fall: a judge with the proxy's own blind spots keeps approving. The dashed control, optimising gold′ "
             "itself, tells whether gold′ can be hacked.",
    differs="gold′ is a 1.35M classifier told what degenerate text looks like, not a human; the blind spot is the "
            "one Gao's protocol gives naturally (the initial policy's samples are fluent), made visible by choosing a "
            "judge that sees it, as Moskovitz et al. 2023 choose their evaluation metric. The policy is 1.35M "
            "parameters and travels far in a few dozen steps.",
)
BON = dict(
    claim="#### c) Best-of-n against a proxy\nDraw *n* completions, keep the one the proxy likes best. Its KL from "
          "the base policy is known in closed form, and one pool of 256 completions per prompt gives every n through "
          "an unbiased estimator over subsets. Four proxies learn the same pairs of base-policy completions: "
          "labelled by gold′ (clean), with 25 % or 35 % of the labels flipped (Coste et al. 2023), or labelled by "
          "the sentiment-only `gold-rm` (blind to what gold′ sees).",
    formula=r"\mathrm{KL}_{\text{bon}} = \log n - \tfrac{n-1}{n},\qquad R_{\text{gold}}(d) \approx d\,(\alpha - \beta d)",
    look_for="Each proxy's own score always climbs with n (a property of the estimator, not a finding), and so does "
             "gold′ when gold′ itself ranks (the dashed ceiling). The registered expectation for the clean proxy is "
             "*no* bend: Coste et al. saw none up to n = 12,500 with clean labels. Noisy labels and a blind spot are "
             "what the literature says bends gold: watch whether gold′ peaks and then falls by more than 2 SE.",
    differs="Gao et al. go to n = 60,000 with a 6B policy; here n ≤ 256 with a 1.35M policy, and the judge is gold′.",
)
OIRL = dict(
    claim="#### d) Prompt-OIRL in miniature\nQueries are review endings whose true verdict is hidden; prompts are "
          "templates that pre-fill the start of the answer. From offline logs of every prompt on training queries, "
          "a small (query, prompt) → reward model picks a prompt for each new query, with no policy calls.",
    formula=r"\hat r(q, p) \approx \mathbb E_{y\sim\pi(\cdot\mid p(q))}[r(q, y)],\qquad p^*(q) = \arg\max_p \hat r(q, p)",
    look_for="Prompt-OIRL's per-query choice should beat the best single prompt chosen on the logs (the verdict asks "
             "for a paired 95 % interval above 0), and its predictions should tell which queries each prompt suits "
             "(correlation within each prompt). The oracle, the best prompt in hindsight on the evaluation samples, is "
             "an upper bound by construction, inflated by sampling noise. Try other seeds and more queries.",
    differs="Prompt-OIRL learns from logs of arithmetic-reasoning prompts on real LLMs with exact-match rewards; "
            "here the reward is a sentiment judge's agreement with the review's star label, and the query "
            "features come from the embedded learned reward model.",
)


def draw_rm_curve(result: dict) -> None:
    st.plotly_chart(figures.rm_curve(result), width="stretch")


def draw_overopt(result: dict) -> None:
    side_by_side(*figures.overoptimization(result))
    rows = []
    for a in result["arms"]:
        pk = peak(a)
        rows.append({"arm": a["name"], "role": a["role"], "judge": a["judge"], "proxy held-out accuracy":
                     a["proxy_accuracy"], "judge peaks at step": pk["step"], "KL at peak": round(pk["kl"], 1),
                     "fall by the end": round(pk["fall"], 2), "SE of the fall": round(pk["se"], 2),
                     "KL at the end": round(pk["final_kl"], 1)})
    st.dataframe(rows, hide_index=True, width="stretch")


def draw_bon(result: dict) -> None:
    side_by_side(*figures.best_of_n(result))
    rows = []
    for a in result["arms"]:
        b = gold_bend(result, a)
        rows.append({"arm": a["name"], "role": a["role"], "proxy held-out accuracy": a["held_out_accuracy"],
                     "gold′ peaks at n": b["peak_n"], f"fall by n = {result['n'][-1]}": round(b["fall"]["mean"], 3),
                     "SE": round(b["se"], 3)})
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("The x axis, √(log n − (n−1)/n), is an upper bound on √KL for best-of-n (Beirami et al. 2024).")


def draw_oirl(result: dict) -> None:
    f1, f2 = figures.prompt_oirl(result)
    c1, c2 = st.columns(2)
    c1.plotly_chart(f1, width="stretch")
    c2.plotly_chart(f2, width="stretch")
    from rlhf_core.labs.prompt_oirl import query_correlation

    st.caption(f"Best single prompt: `{result['best_single_prompt']}` · Prompt-OIRL picked the hindsight-best "
               f"prompt for {result['choice_accuracy']:.0%} of queries · correlation of predicted and measured "
               f"rewards within each prompt {query_correlation(result)[0]:.2f} · policy calls to choose: "
               f"{result['policy_calls_to_choose']}")


@guarded
def main() -> None:
    st.title("Lab T3 · The reward model is a proxy")
    st.markdown(INTRO)
    tabs = st.tabs(["a) labels → accuracy", "b) over-optimisation", "c) best-of-n", "d) Prompt-OIRL"])
    with tabs[0]:
        lab_section("rm_curve", draw=draw_rm_curve, **RM_CURVE)
    with tabs[1]:
        lab_section("overoptimization", draw=draw_overopt, **OVEROPT)
    with tabs[2]:
        lab_section("best_of_n", draw=draw_bon, **BON)
    with tabs[3]:
        lab_section("prompt_oirl", draw=draw_oirl, **OIRL)


main()
