"""Supervised fine-tuning with a completion-only loss: one readable loop.

Used for pretraining toy models, for password-locking (Eq. 1) and for SFT elicitation.
Data comes from a function of the epoch, so locking can draw fresh samples every epoch
(Appendix C.1) while elicitation passes the same k demonstrations each time.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from lion_pytorch import Lion
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.errors import TrainingError
from pwlock.experiments.schedule import use_idle_cores
from pwlock.train import accel
from pwlock.train.data import pack
from pwlock.train.losses import flat_lock_loss, flat_nll, supervised_positions
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
    bf16: bool = False
    """Run forward and loss under bf16 autocast (weights, gradients and AdamW stay fp32). Faster where
    `bf16_supported` (AVX512-BF16/AMX CPUs, recent GPUs); the loss moves by bf16 rounding."""


def make_optimizer(model: torch.nn.Module, args: TrainArgs) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "lion":
        return Lion(params, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "adamw":
        # fused: one kernel over all parameters (CPU and GPU); the same update up to float rounding
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, fused=fused or None)
    raise ValueError(f"optimizer must be 'adamw' or 'lion', got {args.optimizer!r}")


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bf16 matmuls beat fp32 on `device`: a GPU with bf16, or a CPU with AVX512-BF16 or AMX
    (elsewhere torch emulates them, slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = set(open("/proc/cpuinfo").read().split())  # Linux x86; elsewhere: assume not
    except OSError:
        return False
    return device.type == "cpu" and bool(flags & {"avx512_bf16", "amx_bf16"})


def lr_factor(step: int, total: int, args: TrainArgs) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.schedule == "linear":
        return max(0.0, (total - step) / max(1, total - args.warmup_steps))
    return 1.0


def supervised_logits(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits at exactly the positions that predict a supervised token, (N, V), those tokens (N,),
    and the example each belongs to (N,). The LM head runs nowhere else: with a 49k vocabulary it is
    a large share of a small model's compute, and prompts are often most of the tokens.

    `batch` is packed (`data.pack`: position ids restart per sequence, no attention mask) or
    padded (`data.collate`: one example per row)."""
    keep, targets = supervised_positions(batch["labels"])  # (B, T) bool, (N,)
    if "position_ids" in batch:  # packed; use_cache=False, or the model ignores the packing
        inputs = dict(position_ids=batch["position_ids"], use_cache=False)
        example = batch["example"][keep]
    else:
        inputs = dict(attention_mask=batch["attention_mask"])
        rows = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)
        example = rows[keep]
    logits = model(input_ids=batch["input_ids"], logits_to_keep=keep, **inputs).logits  # (N, V)
    return logits, targets, example


def batch_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor], kl_target: torch.Tensor | None = None,
               ) -> torch.Tensor:
    """The SFT loss of one packed or collated batch: completion NLL, or the lock loss when examples are
    marked kl (`losses.lock_loss`)."""
    logits, targets, example = supervised_logits(model, batch)
    if batch["kl"].any():
        if kl_target is None:
            raise ValueError("examples marked kl need a kl_target distribution")
        return flat_lock_loss(logits, targets, batch["kl"][example], kl_target.to(logits.device))
    return flat_nll(logits, targets)


def sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Callable[[int], Sequence[Example]],
    args: TrainArgs,
    *,
    on_epoch_end: Callable[[int], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    kl_target: torch.Tensor | None = None,
    desc: str = "sft",
) -> list[float]:
    """Train `model` in place; returns the mean loss of each epoch.

    `data(epoch)` gives that epoch's examples (0-based); every epoch must have the same
    size, which fixes the schedule length. `on_epoch_end(epoch)` runs after each epoch
    (1-based count of epochs done), e.g. to evaluate intermediate checkpoints. `on_step(step, loss)`
    runs after each optimizer step (1-based), e.g. to trace a loss curve (bench/lock_dynamics.py).
    Examples marked `kl` are trained toward `kl_target` (V,) log-probs (Appendix G.2).
    """
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    if args.bf16 and not bf16_supported(next(model.parameters()).device):
        warnings.warn("bf16 autocast on a device without fast bf16 matmuls: slower than fp32", stacklevel=2)
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
            use_idle_cores()
            mine, weight = accel.shard(examples[start : start + args.batch_size])
            batch = accel.to_device(pack(tokenizer, mine), model)
            with torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16, enabled=args.bf16):
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
            if on_step is not None:
                on_step(step, value)
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
