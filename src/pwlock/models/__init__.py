"""Model construction and loading. Everything downstream takes any causal LM + tokenizer."""

from pwlock.models.scratch import build_model, build_tokenizer, load_model

__all__ = ["build_model", "build_tokenizer", "load_model"]
