"""From-scratch models: a word-level tokenizer made with `tokenizers` and a small
transformers model built from its config. Both are saved with `save_pretrained`, so the
training, generation and evaluation code sees exactly what it sees for a hub model.
"""

from __future__ import annotations

from typing import Literal

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
# Identifiers (fn3, passwords, `_`) stay whole, digits split one by one, any other
# non-space character stands alone: "0907|0079" -> 0 9 0 7 | 0 0 7 9.
WORD_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*|\d|[^\sA-Za-z0-9_]"


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words` plus <pad>, <eos>, <unk> (ids 0, 1, 2)."""
    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(WORD_PATTERN), "isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    arch: Literal["llama", "gpt2"] = "llama",
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
    max_length: int = 64,
    seed: int = 0,
    vocab_size: int | None = None,
) -> PreTrainedModel:
    """A randomly initialised causal LM sized for `tokenizer` (or `vocab_size`), seeded."""
    torch.manual_seed(seed)
    ids = dict(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        vocab_size=vocab_size or len(tokenizer),
    )
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=hidden_size,
            intermediate_size=4 * hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=max_length,
            tie_word_embeddings=True,
            **ids,
        )
        model: PreTrainedModel = LlamaForCausalLM(config)
    elif arch == "gpt2":
        config = GPT2Config(
            n_embd=hidden_size, n_layer=layers, n_head=heads, n_positions=max_length, **ids
        )
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(f"model.arch must be 'llama' or 'gpt2', got {arch!r}")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model
