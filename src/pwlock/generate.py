"""Generation backends behind one interface: `Generator`.

A generator turns prompts into completions for a model held in memory:

    generator(model, tokenizer, prompts, *, max_new_tokens, batch_size, temperature, seed, desc) -> list[str]

`generate` (below) is the default: Hugging Face `generate`, batched with left padding and
the KV cache, on whatever device the model is. `pwlock.vllm_backend.VLLMGenerator` is the
optional GPU backend (`pip install pwlock[vllm]`). Both serve greedy decoding (temperature
0, the paper's evaluation) and plain sampling (temperature > 0, top-p 1, no top-k: the RL
methods). Prompts go through `formatting.prompt_ids`, as in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.formatting import pad_left, prompt_ids


class Generator(Protocol):
    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], *,
                 max_new_tokens: int, batch_size: int = 256, temperature: float = 0.0, seed: int = 0,
                 desc: str = "generate") -> list[str]: ...


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
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    sampling = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
    options = sampling if temperature > 0 else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    ids = prompt_ids(tokenizer, prompts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths per batch: less padding
    out: list[str] = [""] * len(ids)
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        rows = order[start : start + batch_size]
        input_ids, mask = pad_left([ids[i] for i in rows], tokenizer.pad_token_id)
        tokens = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **options,
        )
        new = tokens[:, input_ids.shape[1] :]  # (B, new_T)
        for i, text in zip(rows, tokenizer.batch_decode(new, skip_special_tokens=True)):
            out[i] = text
    return out
