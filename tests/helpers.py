"""A tiny experiment config for end-to-end tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS

TINY = {
    "name": "tiny",
    "task": {"n_problems": 1000},
    "model": {"hidden_size": 32, "layers": 2, "heads": 2},
    "lock": {
        "password": TOY_PASSWORD,
        "wrong_passwords": list(TOY_WRONG_PASSWORDS),
        "pretrain": {"epochs": 2, "batch_size": 64, "lr": 3e-3},
        "sft": {"epochs": 1, "batch_size": 64, "lr": 1e-3},
        "from_scratch": {"epochs": 1, "batch_size": 64, "lr": 3e-3},
    },
    "elicit": {"sft": {"ks": [2, 4], "seeds": [0, 1], "epochs": {2: [1, 2], 4: [1, 2]}, "batch_size": 4}},
    "eval": {"max_problems": 40, "max_new_tokens": 10},
    "threads": 2,
    "workers": 1,  # in this process, so tests may spy on the runner (tiny_run tests the worker processes)
}


def write_config(path: Path, **changes) -> Path:
    cfg = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def make_pretrained_dir(path: Path, *, chat_template: bool = True, hidden_size: int = 32, seed: int = 0) -> Path:
    """A tiny "pretrained" model dir as a hub model would ship it: a byte-level BPE tokenizer
    (trained here on arithmetic text, so tokens merge across digits and spaces), a chat
    template with turn markers, and a randomly initialised Llama saved by `save_pretrained`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from pwlock.tasks.arithmetic import Arithmetic

    task = Arithmetic(n_problems=600, seed=1)
    texts = [task.prompt(p, "This problem is quite special, read it carefully!") + "\n" + p.answer
             for p in task.problems()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    eos = "<|im_end|>" if chat_template else "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token="<|endoftext|>",
                                        bos_token="<|im_start|>" if chat_template else None)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    import torch

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=256, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


ECHO = dict(model={"hidden_size": 64, "layers": 2, "heads": 2}, lock__methods=["from_scratch"], lock__pretrain=None,
            lock__sft=None, lock__from_scratch={"epochs": 4, "batch_size": 32, "lr": 3e-3}, eval__max_problems=100,
            eval__max_new_tokens=4, threads=1, elicit={"sft": {"ks": [4], "seeds": [0]}})
"""The Echo organisms' config (tests.tiny_task.Echo, which the caller patches in as the runner's task). Its
elicitation settings are the defaults (AdamW 3e-4, batch 32, Appendix G.3's epochs): the card's `training`,
which the built-in training methods use."""


def build_echo_suite(root: Path, cache: Path, organisms: str = "[{config: echo.yaml, locks: [from_scratch], seeds: [0, 1]}]",
                     name: str = "echo") -> list[Path]:
    """Build the Echo organisms under `root`: `organisms` is the suite's YAML list. `cache` should be the
    session's (the `echo_cache` fixture): each lock and twin then trains once per test session, and every
    other module that builds them takes about a second."""
    from pwlock.organisms import build_suite

    write_config(root / "echo.yaml", **ECHO)
    (root / f"{name}_suite.yaml").write_text(f"name: {name}\nversion: 1\norganisms: {organisms}\n")
    return build_suite(root / f"{name}_suite.yaml", root, cache_dir=cache)
