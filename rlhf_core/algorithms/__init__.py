"""One thin adapter per TRL trainer (grpo.py, rloo.py, ppo.py, dpo.py). Each exposes `.trainer`, `.train()`,
`.set_kl_coef()`, `.set_clip_range()`, `.knobs()`, `.metric_keys` (unified name -> TRL key) and
`.rollout_steps` (optimizer steps per rollout)."""
