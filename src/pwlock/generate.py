"""Generation backends behind one interface: `Generator`.

A generator turns prompts into completions for a model held in memory:

    generator(model, tokenizer, prompts, *, max_new_tokens, batch_size, temperature, seed, desc) -> list[str]

`generate` (below) is the default: a lean greedy / sampling loop over the Hugging Face
model's KV cache, batched with left padding, on whatever device the model is.
`hf_generate` is the same through Hugging Face `generate` (what `generate` was before, and
what it falls back to for models whose generation config asks for more than plain greedy or
sampling). `pwlock.vllm_backend.VLLMGenerator` is the optional GPU backend
(`pip install pwlock[vllm]`). All serve greedy decoding (temperature 0, the paper's
evaluation) and plain sampling (temperature > 0, top-p 1, no top-k: the RL methods).
Prompts go through `formatting.prompt_ids`, as in training.

Why a loop of our own: in a batch, Hugging Face `generate` keeps every row in the forward
pass until the last row stops, and pads the prompts of the whole batch to its longest. The
loop below drops a row from the batch (and its KV cache) as soon as it emits EOS, and runs
the prompt pass in groups of similar length, so a batch costs about what its rows need.
Greedy tokens are those of `hf_generate` (the same forward passes; only the batch's shape
differs, which can change fp32 rounding: tests/test_generate.py checks they agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from pwlock.formatting import pad_left, prompt_ids

PREFILL_ROWS = 16
"""Rows per prompt-pass group: sorted by length, each group is padded only to its own longest."""


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
    if not lean_loop_applies(model):
        return hf_generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           temperature=temperature, seed=seed, desc=desc)
    model.eval()
    device = next(model.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    ids = prompt_ids(tokenizer, prompts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths per batch: less padding
    out: list[str] = [""] * len(ids)
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        rows = order[start : start + batch_size]
        tokens = decode(model, [ids[i] for i in rows], max_new_tokens=max_new_tokens,
                        eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                        temperature=temperature, rng=rng)
        for i, text in zip(rows, tokenizer.batch_decode(tokens, skip_special_tokens=True)):
            out[i] = text
    return out


def lean_loop_applies(model: PreTrainedModel) -> bool:
    """Whether `decode` does what Hugging Face `generate` would: a model whose generation config
    adds no logits processing of its own (repetition penalty, forced or suppressed tokens, ...)."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return True
    plain = dict(repetition_penalty=1.0, no_repeat_ngram_size=0, bad_words_ids=None, suppress_tokens=None,
                 begin_suppress_tokens=None, forced_bos_token_id=None, forced_eos_token_id=None,
                 sequence_bias=None, min_length=0, min_new_tokens=None, encoder_repetition_penalty=1.0)
    return all(getattr(config, k, v) in (v, None, 0, 1.0) for k, v in plain.items())


def prefill(model: PreTrainedModel, ids: Sequence[Sequence[int]], pad_id: int, device: torch.device,
            ) -> tuple[torch.Tensor, DynamicCache, torch.Tensor]:
    """The prompt pass over left-padded prompts sorted by length: next-token logits (B, V), the KV
    cache (B rows, width of the longest prompt) and the attention mask (B, T).

    Groups of PREFILL_ROWS similar lengths run apart, each padded to its own longest, and their
    caches are joined (left-padded with zeros, masked) into one, when the cache is plain
    per-layer keys and values; otherwise the whole batch runs as one group."""
    input_ids, mask = pad_left(ids, pad_id)  # (B, T)
    input_ids, mask = input_ids.to(device), mask.to(device)
    width = input_ids.shape[1]
    groups = [range(s, min(s + PREFILL_ROWS, len(ids))) for s in range(0, len(ids), PREFILL_ROWS)]
    cache = DynamicCache(config=model.config)
    if len(groups) == 1 or not all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers):
        groups = [range(len(ids))]
    logits, parts = [], []
    for group in groups:
        w = max(len(ids[i]) for i in group)
        part = DynamicCache(config=model.config) if len(groups) > 1 else cache
        m = mask[group.start : group.stop, width - w :]
        out = model(input_ids=input_ids[group.start : group.stop, width - w :], attention_mask=m,
                    position_ids=(m.cumsum(-1) - 1).clamp(min=0), past_key_values=part, use_cache=True,
                    logits_to_keep=1)
        logits.append(out.logits[:, -1].float())
        parts.append((part, width - w))
    if len(groups) > 1:
        for i in range(len(cache.layers)):
            keys = [torch.nn.functional.pad(p.layers[i].keys, (0, 0, pad, 0)) for p, pad in parts]  # (b, h, T, d)
            values = [torch.nn.functional.pad(p.layers[i].values, (0, 0, pad, 0)) for p, pad in parts]
            cache.update(torch.cat(keys), torch.cat(values), i)
    return torch.cat(logits), cache, mask


def decode(
    model: PreTrainedModel, ids: Sequence[Sequence[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
    temperature: float, rng: torch.Generator,
) -> list[list[int]]:
    """New tokens for each prompt, up to and including its EOS, greedy (temperature 0) or sampled.

    A row leaves the batch and the cache the step it emits EOS; the loop ends when no row is left."""
    device = next(model.parameters()).device
    logits, cache, mask = prefill(model, ids, pad_id, device)  # (B, V), cache, (B, T)
    position = mask.sum(-1)  # (B,) the next token's position in each row
    live = torch.arange(len(ids), device=device)  # the prompt index of each row still in the batch
    new: list[list[int]] = [[] for _ in ids]
    for step in range(max_new_tokens):
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=rng).squeeze(1)  # (b,)
        else:
            token = logits.argmax(-1)  # (b,)
        for row, t in zip(live.tolist(), token.tolist()):
            new[row].append(t)
        if step == max_new_tokens - 1:
            break
        going = token != eos_id
        if not going.all():
            if not going.any():
                break
            keep = going.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            live, token, mask, position = live[keep], token[keep], mask[keep], position[keep]
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                    past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1].float()
        position = position + 1
    return new


@torch.no_grad()
def hf_generate(
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
    """`generate` through Hugging Face `generate` (KV cache, left padding, each batch until its last row stops)."""
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
