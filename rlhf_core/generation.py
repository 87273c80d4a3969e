"""Sampling from a policy outside training (CLI `generate`, evaluation, the labs)."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate(model, tok, prompts: list[str], n: int = 1, max_new_tokens: int = 24,
             temperature: float = 1.0, seed: int | None = None) -> list[list[str]]:
    """n completions per prompt (completion text only), sampled with plain temperature sampling."""
    if seed is not None:
        torch.manual_seed(seed)
    model.eval()
    tok.padding_side = "left"
    batch = [p for p in prompts for _ in range(n)]
    enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                         max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
