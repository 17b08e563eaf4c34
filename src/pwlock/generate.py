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

import inspect
import os
from collections.abc import Sequence
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from pwlock.experiments.schedule import use_idle_cores
from pwlock.formatting import pad_left, prompt_ids

PREFILL_TOKENS = 8192
"""At most this many (padded) prompt tokens per prompt-pass group: bounds the pass's activations."""
PREFILL_SLACK = 8
"""A prompt-pass group pads its rows by at most this many tokens (or an eighth of its longest row)."""
CPU_CACHE_BYTES = 2 * 2**30
"""On CPU, a batch's KV cache at full length (its rows x (longest prompt + max_new_tokens)) stays within
this: side-by-side workers share the RAM, and a fixed bound keeps the batches, so the fp32 rounding,
the same on every machine. On an accelerator, half of its free memory at the call."""


def kv_bytes_per_token(model: PreTrainedModel) -> int:
    """Bytes one token adds to the KV cache: keys and values of every layer (grouped-query heads counted
    as the model keeps them)."""
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * next(model.parameters()).element_size()


def cache_budget(device: torch.device) -> int:
    """The KV-cache bytes one batch may take on `device` (CPU_CACHE_BYTES on CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 2
    return CPU_CACHE_BYTES


def decode_batches(lengths: Sequence[int], batch_size: int, max_new_tokens: int, max_tokens: int) -> list[slice]:
    """Consecutive rows (sorted by prompt length, as `generate` passes them) cut into batches of at
    most `batch_size` rows whose cache at full length, rows x (longest prompt + max_new_tokens), stays
    within `max_tokens` (a batch has at least one row). Short prompts fill whole batches; many-shot
    prompts near the context get fewer rows instead of exhausting the memory (64 shots of arithmetic
    on SmolLM2-135M: 100 rows x 2,000 tokens is a 9 GB cache, and two such workers were killed)."""
    batches, start = [], 0
    for i, n in enumerate(lengths):
        rows = i - start + 1
        if i > start and (rows > batch_size or rows * (n + max_new_tokens) > max_tokens):
            batches.append(slice(start, i))
            start = i
    if len(lengths):
        batches.append(slice(start, len(lengths)))
    return batches


def batches_of(model: PreTrainedModel, ids: Sequence[Sequence[int]], batch_size: int, max_new_tokens: int,
               ) -> tuple[list[int], list[slice]]:
    """The prompts' order (by length: similar lengths per batch, less padding) and its batches."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    max_tokens = cache_budget(next(model.parameters()).device) // kv_bytes_per_token(model)
    return order, decode_batches([len(ids[i]) for i in order], batch_size, max_new_tokens, max_tokens)


def prefill_groups(lengths: Sequence[int]) -> list[slice]:
    """Consecutive rows (sorted by length, as `generate` passes them) cut into prompt-pass groups:
    a new group starts when padding to the longest row would waste more than the slack, or the
    group would exceed PREFILL_TOKENS. Prompts of one length (a toy task) make one pass; a
    group per 16 rows cost a tiny model ~60 forward passes per 1000 prompts, most of its eval."""
    groups, start, low, high = [], 0, 0, 0
    for i, n in enumerate(lengths):
        if i > start:
            lo, hi = min(low, n), max(high, n)
            if hi - lo <= max(PREFILL_SLACK, hi // 8) and hi * (i - start + 1) <= PREFILL_TOKENS:
                low, high = lo, hi
                continue
            groups.append(slice(start, i))
        start, low, high = i, n, n
    if len(lengths):
        groups.append(slice(start, len(lengths)))
    return groups


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
    order, batches = batches_of(model, ids, batch_size, max_new_tokens)
    out: list[str] = [""] * len(ids)
    for batch in tqdm(batches, desc=desc, leave=False):
        use_idle_cores()
        rows = order[batch]
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


def cache_arg(model: PreTrainedModel) -> str:
    """The forward argument that takes the KV cache: `cache` in recent transformers (which warns on
    every call given the older `past_key_values`), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def plain_cache(model: PreTrainedModel) -> bool:
    """Whether the model's KV cache is plain per-layer keys and values (no sliding window or state),
    which `prefill` may cut and join."""
    return all(type(layer).__name__ == "DynamicLayer" for layer in DynamicCache(config=model.config).layers)


def prefill(model: PreTrainedModel, ids: Sequence[Sequence[int]], pad_id: int, device: torch.device,
            ) -> tuple[torch.Tensor, DynamicCache, torch.Tensor]:
    """The prompt pass: next-token logits (B, V), the KV cache and its attention mask (B, T).

    With a plain cache, the prompts' common prefix (a chat template's system turn, a shared
    instruction) runs once, and the rest in groups of similar length (`prefill_groups`), each
    padded to its own longest;
    the caches are joined into one laid out as [prefix | padding | rest of the prompt], the
    padding masked. Otherwise one left-padded pass over the whole batch."""
    kv = cache_arg(model)
    if not plain_cache(model):
        input_ids, mask = (t.to(device) for t in pad_left(ids, pad_id))
        cache = DynamicCache(config=model.config)
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    **{kv: cache}, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].float(), cache, mask
    shared = len(os.path.commonprefix([list(x) for x in ids]))
    shared = min(shared, min(len(x) for x in ids) - 1)  # every row keeps a token whose logits come out
    prefix: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: keys, values (1, h, shared, d)
    if shared > 0:
        cache = DynamicCache(config=model.config)
        model(input_ids=torch.tensor([ids[0][:shared]], device=device), **{kv: cache}, use_cache=True,
              logits_to_keep=1)
        prefix = [(layer.keys, layer.values) for layer in cache.layers]
    rest, rest_mask = (t.to(device) for t in pad_left([x[shared:] for x in ids], pad_id))  # (B, W)
    width = rest.shape[1]
    logits: list[torch.Tensor] = []
    keys: list[list[torch.Tensor]] = []  # per layer, per group
    values: list[list[torch.Tensor]] = []
    for rows in prefill_groups([len(x) - shared for x in ids]):
        w = int(rest_mask[rows].sum(-1).max())
        m = rest_mask[rows, width - w :]  # (b, w)
        part = DynamicCache(config=model.config)
        for i, (k, v) in enumerate(prefix):
            part.update(k.expand(len(m), -1, -1, -1), v.expand(len(m), -1, -1, -1), i)
        out = model(input_ids=rest[rows, width - w :], attention_mask=torch.cat([m.new_ones(len(m), shared), m], 1),
                    position_ids=shared + (m.cumsum(-1) - 1).clamp(min=0), **{kv: part}, use_cache=True,
                    logits_to_keep=1)
        logits.append(out.logits[:, -1].float())
        if not keys:
            keys, values = [[] for _ in part.layers], [[] for _ in part.layers]
        for i, layer in enumerate(part.layers):  # (b, h, shared + w, d) -> (b, h, shared + width, d)
            for joined, t in ((keys[i], layer.keys), (values[i], layer.values)):
                joined.append(torch.cat([t[:, :, :shared], gap(t, width - w), t[:, :, shared:]], 2))
    cache = DynamicCache(config=model.config)
    for i in range(len(keys)):
        cache.update(torch.cat(keys[i]), torch.cat(values[i]), i)
    mask = torch.cat([rest_mask.new_ones(len(ids), shared), rest_mask], 1)
    return torch.cat(logits), cache, mask


def gap(t: torch.Tensor, n: int) -> torch.Tensor:
    """n masked (zero) cache positions for the rows of t (b, h, T, d)."""
    return t.new_zeros(t.shape[0], t.shape[1], n, t.shape[3])


def decode(
    model: PreTrainedModel, ids: Sequence[Sequence[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
    temperature: float, rng: torch.Generator,
) -> list[list[int]]:
    """New tokens for each prompt, up to and including its EOS, greedy (temperature 0) or sampled.

    A row leaves the batch and the cache the step it emits EOS; the loop ends when no row is left."""
    device = next(model.parameters()).device
    logits, cache, mask = prefill(model, ids, pad_id, device)  # (B, V), cache, (B, T)
    kv = cache_arg(model)  # once, not at every step
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
                    **{kv: cache}, use_cache=True)
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
    order, batches = batches_of(model, ids, batch_size, max_new_tokens)
    out: list[str] = [""] * len(ids)
    for batch in tqdm(batches, desc=desc, leave=False):
        use_idle_cores()
        rows = order[batch]
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
