"""The DPO loss (Rafailov et al., 2024) and its reward-weighted form (Eq. 2 of the paper).

Sequence log-probabilities are summed over completion tokens only (prompt and padding
carry no label), for the policy and for a frozen reference. For one pair:

    L = -w * log sigmoid(beta * [(log pi(y+) - log ref(y+)) - (log pi(y-) - log ref(y-))])

with w = 1 for plain DPO and w = R(y+) - R(y-) for the continuous-reward variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.train import accel
from pwlock.train.data import pack
from pwlock.train.losses import flat_sequence_logprobs
from pwlock.train.sft import supervised_logits
from pwlock.types import Example


@dataclass(frozen=True)
class Pair:
    """A preference pair for one prompt: `chosen` scored higher than `rejected`."""

    prompt: str
    chosen: str
    rejected: str
    weight: float = 1.0
    """Multiplies the pair's loss: 1, or R(chosen) - R(rejected) for reward-weighted DPO."""


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    beta: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean (weighted) DPO loss over a batch of pairs; every argument is (B,) summed log-probs."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    losses = -F.logsigmoid(beta * margin)
    if weights is not None:
        losses = losses * weights
    return losses.mean()


def pair_batch(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair]) -> dict[str, torch.Tensor]:
    """The packed batch of [chosen..., rejected...] sequences (`data.pack`)."""
    examples = [Example(p.prompt, p.chosen) for p in pairs] + [Example(p.prompt, p.rejected) for p in pairs]
    return pack(tokenizer, examples)


def pair_logprobs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair],
    batch: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs of (chosen, rejected), each (B,), from one forward pass over the
    packed batch [chosen..., rejected...] (`batch`: `pair_batch`'s, made here when not given)."""
    if batch is None:
        batch = accel.to_device(pair_batch(tokenizer, pairs), model)
    logits, targets, example = supervised_logits(model, batch)
    logps = flat_sequence_logprobs(logits, targets, example, 2 * len(pairs))
    return logps[: len(pairs)], logps[len(pairs) :]


def batch_dpo_loss(
    model: PreTrainedModel, reference: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair], *, beta: float,
) -> torch.Tensor:
    """The weighted DPO loss of `model` on a batch of pairs, against the frozen `reference`."""
    batch = accel.to_device(pair_batch(tokenizer, pairs), model)  # tokenized once for both models
    with torch.no_grad():
        ref_chosen, ref_rejected = pair_logprobs(reference, tokenizer, pairs, batch)
    chosen, rejected = pair_logprobs(model, tokenizer, pairs, batch)
    weights = torch.tensor([p.weight for p in pairs], device=chosen.device)
    return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=beta, weights=weights)
