"""Model construction and loading. Everything downstream takes any causal LM + tokenizer."""

from pwlock.models.pretrained import load_model, resolve_model
from pwlock.models.scratch import build_model, build_tokenizer

__all__ = ["build_model", "build_tokenizer", "load_model", "resolve_model"]
