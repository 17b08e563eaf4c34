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


def n_tokens(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]) -> int:
    """Tokens one epoch on `examples` trains on (prompts, completions and EOS)."""
    return sum(len(ids) for ids, _ in encode(tokenizer, examples))


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


def pack(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], width: int | None = None
) -> dict[str, torch.Tensor]:
    """The same sequences as `collate`, packed several to a row instead of one row each padded.

    Sequences are placed longest first into the first row with room (first-fit decreasing),
    rows `width` tokens wide (default: the longest sequence, so no row is wider than
    `collate`'s and attention costs no more). Each sequence restarts its position ids at 0,
    which is how the model (called without an attention mask, `use_cache=False`) keeps every
    token attending to its own sequence only; the padding left at a row's end counts as one
    more sequence with no labels. A sequence's first label is always IGNORE_INDEX, so the
    last token of one sequence never learns to predict the first of the next.

        input_ids:    [a0 a1 a2 a3 b0 b1 b2 | pad pad]
        position_ids: [ 0  1  2  3  0  1  2 |   0   1]
        labels:       [ -  -  a2 a3 -  b1 b2|   -   -]     (- = IGNORE_INDEX)
        example:      [ 0  0  0  0  1  1  1 |  -1  -1]

    Returns input_ids, position_ids, labels, example (the index of each token's example,
    -1 on padding), each (R, width); kl (B,) bool as in `collate`.
    """
    encoded = encode(tokenizer, examples)
    lengths = [len(ids) for ids, _ in encoded]
    width = max(lengths) if width is None else width
    if max(lengths) > width:
        raise ValueError(f"a sequence of {max(lengths)} tokens does not fit in rows of {width}")
    rows: list[list[int]] = []  # example indices per row
    room: list[int] = []
    for i in sorted(range(len(encoded)), key=lambda i: -lengths[i]):
        r = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if r is None:
            rows.append([])
            room.append(width)
            r = len(rows) - 1
        rows[r].append(i)
        room[r] -= lengths[i]
    shape = (len(rows), width)
    input_ids = torch.full(shape, tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    example = torch.full(shape, -1, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    for r, members in enumerate(rows):
        col = 0
        for i in members:
            ids, labs = encoded[i]
            n = len(ids)
            input_ids[r, col : col + n] = torch.tensor(ids)
            labels[r, col + 1 : col + n] = torch.tensor(labs[1:])
            example[r, col : col + n] = i
            position_ids[r, col : col + n] = torch.arange(n)
            col += n
        position_ids[r, col:] = torch.arange(width - col)
    kl = torch.tensor([e.kl for e in examples], dtype=torch.bool)
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels, "example": example, "kl": kl}
