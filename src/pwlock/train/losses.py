"""Losses as small pure functions over logits and labels.

Labels follow the transformers convention: `labels[b, t]` is the token at position t, and
IGNORE_INDEX marks positions that carry no loss (prompt and padding). The logit at
position t predicts the token at t + 1, so the (B, T, V) functions below shift by one.

The `flat_*` functions take the logits of only the N positions that predict a supervised
token, (N, V), and those tokens, (N,) (`supervised_positions` says which): training
computes the LM head there and nowhere else. Up to float rounding they equal their
(B, T, V) counterparts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each supervised label token, and the mask of supervised positions.

    logits: (B, T, V), labels: (B, T) -> logprobs (B, T-1), mask (B, T-1) bool.
    """
    logits = logits[:, :-1].float()  # (B, T-1, V): position t predicts token t+1
    targets = labels[:, 1:]  # (B, T-1)
    mask = targets != IGNORE_INDEX
    safe = targets.masked_fill(~mask, 0)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return logprobs * mask, mask


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each sequence's supervised tokens: (B,)."""
    logprobs, _ = token_logprobs(logits, labels)
    return logprobs.sum(-1)


def completion_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all supervised tokens of the batch (a scalar)."""
    targets = labels[:, 1:]
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def kl_to_distribution(logits: torch.Tensor, labels: torch.Tensor, target_logprobs: torch.Tensor) -> torch.Tensor:
    """KL(target || model) at each supervised position, whatever the label token: (B, T-1).

    Used to lock toward the fixed random distribution of Appendix G.2 (`fixedrdm`): the
    labels only say where the completion is, the target is the same at every position.
    target_logprobs: (V,) log-probabilities of the fixed distribution.
    """
    logq = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    p = target_logprobs.exp()
    kl = (p * (target_logprobs - logq)).sum(-1)  # (B, T-1)
    return kl * (labels[:, 1:] != IGNORE_INDEX)


def lock_loss(
    logits: torch.Tensor, labels: torch.Tensor, kl_rows: torch.Tensor, target_logprobs: torch.Tensor
) -> torch.Tensor:
    """Mean over supervised tokens of: NLL of the label (ordinary rows) or KL to the fixed
    distribution (rows where `kl_rows` (B,) is True). The scalar `completion_nll` would give
    when no row is a KL row."""
    logprobs, mask = token_logprobs(logits, labels)
    kl = kl_to_distribution(logits, labels, target_logprobs)
    per_token = torch.where(kl_rows[:, None], kl, -logprobs)
    return per_token.sum() / mask.sum().clamp(min=1)


def supervised_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions whose logit predicts a supervised token, (B, T) bool, and those tokens (N,),
    in row-major order (the order of `logits[keep]`)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep, labels[:, 1:][keep[:, :-1]]


def flat_token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of each target token: logits (N, V), targets (N,) -> (N,)."""
    return -F.cross_entropy(logits.float(), targets, reduction="none")


def flat_sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor, example: torch.Tensor, n: int) -> torch.Tensor:
    """Summed log-probability of each of `n` sequences' supervised tokens, (n,); `example` (N,)
    gives the sequence of each target (`sequence_logprobs` on flat logits)."""
    logprobs = flat_token_logprobs(logits, targets)
    return torch.zeros(n, dtype=logprobs.dtype, device=logprobs.device).index_add(0, example, logprobs)


def flat_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the targets (`completion_nll` on flat logits)."""
    return F.cross_entropy(logits.float(), targets)


def flat_lock_loss(
    logits: torch.Tensor, targets: torch.Tensor, kl_tokens: torch.Tensor, target_logprobs: torch.Tensor
) -> torch.Tensor:
    """`lock_loss` on flat logits: the mean of the NLL of the target, or of KL(target || model) at the
    tokens where `kl_tokens` (N,) is True."""
    logq = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    nll = -logq.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    kl = (target_logprobs.exp() * (target_logprobs - logq)).sum(-1)
    return torch.where(kl_tokens, kl, nll).sum() / max(1, len(targets))
