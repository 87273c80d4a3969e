"""Lab T3: the reward model is a cheap proxy of expensive feedback; push it too hard and it breaks."""

import streamlit as st

from rlhf_core import runs
from rlhf_core.labs.support import figures, jobs
from ui.common import guarded
from ui.labs import judge_agreement, lab_section

INTRO = """
**The paper's claim.** Human feedback is expensive, so RLHF pays for a limited number of labels and
learns a reward model from them: a cheap proxy that can score any amount of text. A proxy is only as
good as its labels (a), and an optimiser that leans on it, RL (b) or plain best-of-n sampling (c),
eventually finds what the proxy likes but the humans would not (Gao et al. 2022). The same idea
works for prompts (d): learn from offline logs which prompt suits which query, instead of calling
the model for every candidate. Here the embedded `gold-rm` plays the expensive human judge; every
proxy learns from reviews it never saw.
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
    claim="#### b) Over-optimising a proxy (Gao et al. 2022)\nProxies are trained on *n* pairs labelled by the gold "
          "judge; GRPO then maximises each proxy from the base policy while the gold judge scores every rollout.",
    formula=r"R_{\text{gold}}(d) \approx d\,(\alpha - \beta \log d),\qquad d = \sqrt{\mathrm{KL}(\pi\,\|\,\pi_{\text{init}})}",
    look_for="The proxy curves keep climbing as the policy moves away (d grows), while the gold reward rises, "
             "peaks and falls: the policy has found what the proxy wrongly likes (read the samples in the "
             "Playground with reward `gold-rm` vs `learned-rm` to see it). The proxy with fewer labels peaks "
             "earlier and lower. Adding β > 0 slows the walk in d.",
    differs="The judge and the proxies never share a review, but they are small classifiers of the same architecture "
            "trained on the same kind of data, so their errors are still correlated (the agreement figure above), "
            "which hides some over-optimisation a real human would catch; and the tiny "
            "policy drifts far in a handful of steps at the high learning rate this lab uses to stay fast.",
)
BON = dict(
    claim="#### c) Best-of-n against the same proxy\nDraw *n* completions, keep the one the proxy likes best. Its "
          "KL from the base policy is known in closed form, and one sample set gives every n through an unbiased "
          "estimator over subsets.",
    formula=r"\mathrm{KL}_{\text{bon}} = \log n - \tfrac{n-1}{n},\qquad R_{\text{gold}}(d) \approx d\,(\alpha - \beta d)",
    look_for="The proxy gain always climbs with n (a property of the estimator, not a finding). What Gao et al. found "
             "is the gold curve bending over: it rises, peaks, then falls as n grows; the verdict requires that fall "
             "to be larger than its 95 % interval over prompts. A stronger proxy (more labels) bends later, "
             "perhaps beyond the n reached here. When the "
             "over-optimisation lab has run with the same labels and seed, its RL points are drawn here too: "
             "best-of-n buys more gold reward per unit of KL than RL, as Gao et al. found.",
    differs="Gao et al. use up to n = 60,000 with a 6B policy; here n ≤ 256 with a 1.35M policy.",
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
    judge_agreement()
    f_gold, f_proxy = figures.overoptimization(result)
    c1, c2 = st.columns(2)
    c1.plotly_chart(f_gold, width="stretch")
    c2.plotly_chart(f_proxy, width="stretch")
    from rlhf_core.labs.overoptimization import peak

    st.dataframe([{"labels": r["labels"], "β": r["beta"], "proxy accuracy": r["proxy_accuracy"],
                   "gold peaks at d": round(peak(r)["sqrt_kl"], 2), "gold at peak": round(peak(r)["gold"], 2),
                   "fall by the end": round(peak(r)["drop"], 2), "final d": round(peak(r)["final_sqrt_kl"], 2)}
                  for r in result["runs"]], hide_index=True, width="stretch")


def draw_bon(result: dict) -> None:
    rl_runs = []
    try:
        overopt = jobs.status(runs.runs_root(), "overoptimization", {"seed": result["config"]["seed"]})
        if overopt.state == "done":
            rl_runs = [r for r in overopt.result["runs"] if r["labels"] == result["config"]["labels"]]
    except Exception:  # noqa: BLE001 - the overlay is optional
        rl_runs = []
    st.plotly_chart(figures.best_of_n(result, rl_runs), width="stretch")
    from rlhf_core.labs.best_of_n import gold_bend

    bend = gold_bend(result)
    st.caption(f"Gold peaks at n = {bend['peak_n']}, then changes by {-bend['fall']['mean']:+.3f} up to n = {result['n'][-1]} "
               f"(95 % interval of the fall [{bend['fall']['low']:+.3f}, {bend['fall']['high']:+.3f}] over "
               f"{bend['fall']['n']} prompts). Least-squares β = {bend['beta']:.3f} (β > 0: the fit bends over). "
               "The x axis, √(log n − (n−1)/n), is an upper bound on √KL for best-of-n (Beirami et al. 2024).")


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
