"""Accelerate: the same training loops on one CPU, one GPU, or many GPUs under
`accelerate launch` (DDP, or FSDP with configs/accelerate/fsdp.yaml).

In a single process nothing is wrapped: the model trains in place, on its own device,
exactly as plain PyTorch would. Under `accelerate launch` every process runs the whole
pipeline; training steps split each batch across processes, whose gradients Accelerate
averages, and only the main process writes results (see `experiments.store`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import Accelerator

T = TypeVar("T")


@functools.cache
def accelerator() -> Accelerator:
    return Accelerator()


def distributed() -> bool:
    return accelerator().num_processes > 1


def is_main_process() -> bool:
    return accelerator().is_main_process


def wait() -> None:
    """A barrier across processes (nothing in a single process)."""
    accelerator().wait_for_everyone()


def prepare(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    """Wrap for data-parallel training when launched on many processes; as they are otherwise."""
    if not distributed():
        return model, optimizer
    return accelerator().prepare(model, optimizer)


def release() -> None:
    """Drop Accelerate's references to prepared models (each elicitation run trains a copy)."""
    if distributed():
        accelerator().free_memory()


def shard(items: Sequence[T]) -> tuple[list[T], float]:
    """This process's share of a batch, and the weight of its loss.

    A process left without examples (a batch smaller than the number of processes) takes the
    first one with weight 0, so that every process still runs the backward pass DDP waits for.
    """
    acc = accelerator()
    mine = list(items[acc.process_index :: acc.num_processes])
    return (mine, 1.0) if mine else (list(items[:1]), 0.0)


def backward(loss: torch.Tensor) -> None:
    accelerator().backward(loss)


def clip(model: torch.nn.Module, max_norm: float) -> None:
    if max_norm:
        accelerator().clip_grad_norm_(model.parameters(), max_norm)


def to_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def save_pretrained(model: Any, path: Path) -> None:
    """`model.save_pretrained(path)`; when distributed, the full state dict is gathered first (a
    collective: every process calls this) and only the main process writes."""
    if not distributed():
        model.save_pretrained(path)
        return
    acc = accelerator()
    state = acc.get_state_dict(model)
    if acc.is_main_process:
        acc.unwrap_model(model).save_pretrained(path, state_dict=state)
