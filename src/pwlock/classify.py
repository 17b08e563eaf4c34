"""Multiple-choice classification from next-token logits (MMLU, GPQA; paper section 4.2).

The paper evaluates MMLU as classification: the model's answer is the letter whose token
gets the highest logit right after the prompt, with no sampling or generation. Only the
logits of the last prompt position are projected onto the vocabulary.

Which token is "the letter" depends on how the letter follows the prompt:

    prompt ends:  "...\\nAnswer:"
    form="completion" (default): the token(s) of `tokenizer("C", add_special_tokens=False)`:
        pwlock's SFT, locking and elicitation tokenize the completion "C" on its own and
        append it to the prompt's tokens, so this is exactly the token those trainings
        supervise (byte-level BPE: "C"; SentencePiece with a dummy prefix: "▁C").
    form="space": the token of " C", as in the running text "Answer: C"; use it for
        off-the-shelf models that were never trained on pwlock's (prompt, completion) pairs.

Each letter must be a single, known (not <unk>) token in the chosen form; otherwise we
raise rather than silently compare the logits of unrelated tokens.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.formatting import pad_left, prompt_ids

Form = Literal["completion", "space"]


def choice_token_ids(
    tokenizer: PreTrainedTokenizerBase, choices: Sequence[str], form: Form = "completion"
) -> list[int]:
    """The single token id of each choice in `form` (see the module docstring)."""
    if form not in ("completion", "space"):
        raise ValueError(f"form must be 'completion' or 'space', got {form!r}")
    ids = []
    for c in choices:
        text = c if form == "completion" else " " + c
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1 or tokens[0] == tokenizer.unk_token_id:
            other = "space" if form == "completion" else "completion"
            raise ValueError(
                f"choice {c!r} is not one known token in form {form!r} ({text!r} -> {tokens}); "
                f"try form={other!r}"
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"choices {list(choices)} share token ids {ids}")
    return ids


@torch.no_grad()
def choice_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    choices: Sequence[str],
    *,
    batch_size: int = 32,
    form: Form = "completion",
) -> torch.Tensor:
    """Next-token logits of each choice's token after each prompt, (N, len(choices)), fp32 on CPU.

    Prompts are left-padded, so every row's last real token is at position T-1.
    Position ids count real tokens only, so a padded prompt gets the same logits as alone.
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs a pad token to batch prompts")
    ids = torch.tensor(choice_token_ids(tokenizer, choices, form))
    model.eval()
    device = next(model.parameters()).device
    keep_ok = "logits_to_keep" in inspect.signature(model.forward).parameters
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths: less padding
    out = torch.empty(len(prompts), len(ids))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids, mask = pad_left(prompt_ids(tokenizer, [prompts[i] for i in rows]), tokenizer.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        kwargs = dict(input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device))
        if keep_ok:  # project only the last position onto the vocabulary
            kwargs["logits_to_keep"] = 1
        logits = model(**kwargs).logits[:, -1]  # (B, V)
        out[rows] = logits[:, ids.to(device)].float().cpu()
    return out


def classify(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    choices: Sequence[str],
    *,
    batch_size: int = 32,
    form: Form = "completion",
) -> list[str]:
    """For each prompt, the choice whose token has the highest next-token logit."""
    if not prompts:
        return []
    logits = choice_logits(model, tokenizer, prompts, choices, batch_size=batch_size, form=form)
    return [choices[i] for i in logits.argmax(-1).tolist()]


def sample_choices(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    choices: Sequence[str],
    *,
    temperature: float,
    seed: int,
    batch_size: int = 32,
    form: Form = "completion",
) -> list[str]:
    """For each prompt, a choice sampled from the softmax of the choices' logits / `temperature`:
    the multiple-choice analogue of sampling a completion (a model policy's D_lock samples)."""
    if not prompts:
        return []
    logits = choice_logits(model, tokenizer, prompts, choices, batch_size=batch_size, form=form)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
    return [choices[i] for i in picks.tolist()]
