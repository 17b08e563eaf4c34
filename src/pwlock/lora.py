"""LoRA (PEFT) as an option wherever pwlock fine-tunes: locking, elicitation, policy SFT.

A run adds fresh adapters to the model it starts from, trains them, and saves the model
with the adapters merged in. So every saved model (a lock, a pi_strong) is a plain model,
and the next stage (elicitation of a LoRA-locked model) starts its own adapters from it.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import PreTrainedModel


def add_lora(model: PreTrainedModel, *, r: int, alpha: float, dropout: float = 0.0,
             target_modules: str | list[str] = "all-linear", seed: int | None = None) -> Any:
    """`model` wrapped with fresh trainable LoRA adapters; the base weights are frozen."""
    import torch
    from peft import LoraConfig, get_peft_model

    if seed is not None:  # adapter initialisation is random (A); B starts at zero
        torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


def merged(model: Any) -> PreTrainedModel:
    """A plain model equal to `model` with its adapters folded in (a copy: `model` keeps them)."""
    if not is_lora(model):
        return model
    return copy.deepcopy(model).merge_and_unload()
