"""Batched generation with Hugging Face `generate` (KV cache, left padding).

One function serves greedy decoding (temperature 0, the paper's evaluation) and plain
sampling (temperature > 0, top-p 1, no top-k: used by the RL methods).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
    desc: str = "generate",
) -> list[str]:
    """Completions for `prompts`, in order, decoded without special tokens."""
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # so every prompt ends where generation starts
    torch.manual_seed(seed)
    sampling = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
    options = sampling if temperature > 0 else dict(do_sample=False)
    out: list[str] = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
            batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
            tokens = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **options,
            )
            new = tokens[:, batch["input_ids"].shape[1] :]  # (B, new_T)
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return out
