"""What the model sees: a task's prompt text as token ids, through a chat template or plain.

Tasks write prompts as plain text (password included). A tokenizer with a chat template
(e.g. SmolLM2-Instruct) gets the prompt as one user turn followed by the template's
generation prompt; a tokenizer without one (base models, pwlock's from-scratch models)
gets the text with the tokenizer's own special tokens (BOS where it adds one).

The completion is always tokenized on its own and appended after these ids, followed by
EOS (`train.data.encode`), and generation starts right after them; so training and
sampling see the same prefix, and no token straddles the prompt/completion boundary.
`models.load_model(chat_template=False)` drops a template to get plain prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """The token ids of each prompt as the model sees it."""
    if not tokenizer.chat_template:
        return tokenizer(list(prompts))["input_ids"]
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    # The rendered template already holds its special tokens (BOS, turn markers).
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def pad_left(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (input_ids, attention_mask), each (B, T): every row ends where generation starts."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        if x:
            input_ids[i, width - len(x):] = torch.tensor(x)
            mask[i, width - len(x):] = 1
    return input_ids, mask
