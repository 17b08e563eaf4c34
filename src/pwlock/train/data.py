"""Turning (prompt, completion) pairs into padded tensors with a completion-only loss mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from pwlock.formatting import prompt_ids
from pwlock.train.losses import IGNORE_INDEX
from pwlock.types import Example


def encode(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]
) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels for each example.

    Prompt and completion are tokenized separately and concatenated, so no token ever
    straddles the boundary and the mask is exact:

        ids:    [p0 p1 ... pn | c0 c1 ... cm  EOS]
        labels: [-100 ... -100| c0 c1 ... cm  EOS]
    """
    prompts = prompt_ids(tokenizer, [e.prompt for e in examples])  # chat template or BOS where there is one
    completions = tokenizer([e.completion for e in examples], add_special_tokens=False)["input_ids"]
    out = []
    for p, c in zip(prompts, completions):
        c = c + [tokenizer.eos_token_id]
        out.append((p + c, [IGNORE_INDEX] * len(p) + c))
    return out


def collate(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]
) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, labels, each (B, T); kl (B,) bool."""
    encoded = encode(tokenizer, examples)
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        attention[i, : len(ids)] = 1
    kl = torch.tensor([e.kl for e in examples], dtype=torch.bool)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "kl": kl}
