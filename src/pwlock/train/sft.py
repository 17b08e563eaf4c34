"""Supervised fine-tuning with a completion-only loss: one readable loop.

Used for pretraining toy models, for password-locking (Eq. 1) and for SFT elicitation.
Data comes from a function of the epoch, so locking can draw fresh samples every epoch
(Appendix C.1) while elicitation passes the same k demonstrations each time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from lion_pytorch import Lion
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.errors import TrainingError
from pwlock.train import accel
from pwlock.train.data import collate
from pwlock.train.losses import IGNORE_INDEX, completion_nll, lock_loss
from pwlock.types import Example


@dataclass(frozen=True)
class TrainArgs:
    """Optimisation settings of one SFT run (plain values; configs build these)."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: Literal["adamw", "lion"] = "adamw"
    warmup_steps: int = 0
    """Linear warm-up from 0 to `lr` over this many optimizer steps."""
    schedule: Literal["constant", "linear"] = "constant"
    """After warm-up: keep `lr` (the paper) or decay linearly to 0 at the last step."""
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0


def make_optimizer(model: torch.nn.Module, args: TrainArgs) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "lion":
        return Lion(params, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    raise ValueError(f"optimizer must be 'adamw' or 'lion', got {args.optimizer!r}")


def lr_factor(step: int, total: int, args: TrainArgs) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.schedule == "linear":
        return max(0.0, (total - step) / max(1, total - args.warmup_steps))
    return 1.0


def completion_logits(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels from the first position that predicts a supervised token on, (B, T', V) and
    (B, T'): the LM head over the prompt positions is skipped. With a 49k vocabulary that head is
    a large share of a small model's compute, and the prompt is often most of the tokens."""
    labels = batch["labels"]
    supervised = (labels != IGNORE_INDEX).any(0).nonzero()
    start = max(0, int(supervised[0]) - 1) if len(supervised) else 0
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=labels.shape[1] - start).logits
    return logits, labels[:, start:]


def batch_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor], kl_target: torch.Tensor | None = None,
               ) -> torch.Tensor:
    """The SFT loss of one collated batch: completion NLL, or `lock_loss` when rows are marked kl."""
    logits, labels = completion_logits(model, batch)
    if batch["kl"].any():
        if kl_target is None:
            raise ValueError("examples marked kl need a kl_target distribution")
        return lock_loss(logits, labels, batch["kl"], kl_target.to(logits.device))
    return completion_nll(logits, labels)


def sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Callable[[int], Sequence[Example]],
    args: TrainArgs,
    *,
    on_epoch_end: Callable[[int], None] | None = None,
    kl_target: torch.Tensor | None = None,
    desc: str = "sft",
) -> list[float]:
    """Train `model` in place; returns the mean loss of each epoch.

    `data(epoch)` gives that epoch's examples (0-based); every epoch must have the same
    size, which fixes the schedule length. `on_epoch_end(epoch)` runs after each epoch
    (1-based count of epochs done), e.g. to evaluate intermediate checkpoints.
    Examples marked `kl` are trained toward `kl_target` (V,) log-probs (Appendix G.2).
    """
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    first = list(data(0))
    if not first:
        raise ValueError(f"{desc}: no training examples")
    steps_per_epoch = math.ceil(len(first) / args.batch_size)
    total = steps_per_epoch * args.epochs
    optimizer = make_optimizer(model, args)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, args))
    trained, optimizer = accel.prepare(model, optimizer)  # DDP/FSDP under `accelerate launch`
    model.train()
    losses = []
    bar = tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)
    for epoch in range(args.epochs):
        examples = first if epoch == 0 else list(data(epoch))
        if len(examples) != len(first):
            raise ValueError(f"{desc}: epoch {epoch} has {len(examples)} examples, not {len(first)}")
        rng.shuffle(examples)
        epoch_loss = 0.0
        for start in range(0, len(examples), args.batch_size):
            mine, weight = accel.shard(examples[start : start + args.batch_size])
            batch = accel.to_device(collate(tokenizer, mine), model)
            loss = batch_loss(trained, batch, kl_target) * weight
            step = epoch * steps_per_epoch + start // args.batch_size + 1
            value = loss.item()
            if not math.isfinite(value):  # stop before a NaN step poisons the weights that would be saved
                raise TrainingError(f"{desc}: the loss is {value} at epoch {epoch + 1}, step {step} of {total} "
                                    f"(lr {args.lr:g}): lower the learning rate or check the data")
            accel.backward(loss)
            accel.clip(trained, args.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += value
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}", refresh=False)  # redraw at tqdm's pace
        losses.append(epoch_loss / steps_per_epoch)
        if on_epoch_end is not None:
            model.eval()
            on_epoch_end(epoch + 1)
            model.train()
    bar.close()
    accel.release()
    model.eval()
    return losses
