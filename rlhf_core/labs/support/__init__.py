"""What the labs share, kept apart so that `rlhf_core/labs/` shows the labs at a glance:
`common` (settings, progress, fits, the fork helper), `verdict` (the three verdict states),
`imdb` (reviews, reward models, sampling, GRPO for the IMDB labs), `token_task` and `token_env`
(the synthetic token tasks of T2, T4 and T5), `figures` (plotly figures for the pages) and `jobs`
(lab subprocesses and their result cache for the app)."""
