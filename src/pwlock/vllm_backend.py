"""vLLM generation backend (GPU only; `pip install pwlock[vllm]`), the `Generator` interface.

vLLM serves a model from a directory, while pwlock trains models in memory. So the
generator saves the model (LoRA adapters merged) to a scratch dir and starts an engine on
it, and does so again only when the weights may have changed since the last call
(`WeightsKey`). That suits pwlock's use: many prompts per model (evaluations, policy
samples, RL sampling rounds).

Prompts are passed as token ids made by `formatting.prompt_ids`, exactly as the Hugging
Face backend and the training loss see them, and generation stops at the tokenizer's EOS.
"""

from __future__ import annotations

import gc
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.formatting import prompt_ids
from pwlock.lora import merged


class WeightsKey:
    """Which weights an engine was started from: the model object and each of its parameters,
    held by weak reference (a dead reference never matches, so a new model that Python puts at
    a freed model's address is a different model), and each parameter's in-place version
    counter, which every optimizer step and every in-place edit (`copy_`, `load_state_dict`)
    bumps. An earlier key, `(id(model), sum of version counters)`, let two models trained for
    the same number of steps share a key when the second reused the first one's address."""

    def __init__(self, model: torch.nn.Module) -> None:
        params = list(model.parameters())
        self.model = weakref.ref(model)
        self.params = tuple(weakref.ref(p) for p in params)
        self.versions = tuple(p._version for p in params)

    def matches(self, model: torch.nn.Module) -> bool:
        if self.model() is not model:
            return False
        params = list(model.parameters())
        return len(params) == len(self.params) and all(
            ref() is p and p._version == v for ref, v, p in zip(self.params, self.versions, params))


class VLLMGenerator:
    """Generate with vLLM; `engine_args` go to `vllm.LLM` (e.g. tensor_parallel_size=2).
    `engine` starts an engine from `model=`/`tokenizer=` folders (default `vllm.LLM`; tests
    pass a fake)."""

    def __init__(self, *, dtype: str = "auto", gpu_memory_utilization: float = 0.5,
                 engine: Callable[..., Any] | None = None, **engine_args: Any) -> None:
        if engine is None:
            try:
                from vllm import LLM
            except ImportError:
                raise ImportError("the vLLM backend needs vLLM on a CUDA machine: pip install 'pwlock[vllm]'") from None
            engine = LLM
        self.engine = engine
        self.engine_args = dict(dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, **engine_args)
        self.scratch = tempfile.TemporaryDirectory(prefix="pwlock-vllm-")
        self.llm: Any = None
        self.key: WeightsKey | None = None

    def load(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        if self.llm is not None and self.key is not None and self.key.matches(model):
            return
        self.close()
        folder = Path(self.scratch.name) / "model"
        merged(model).save_pretrained(folder)  # LoRA adapters folded into a copy
        tokenizer.save_pretrained(folder)
        self.llm = self.engine(model=str(folder), tokenizer=str(folder), **self.engine_args)
        self.key = WeightsKey(model)

    def close(self) -> None:
        """Free the engine's GPU memory before starting another."""
        if self.llm is None:
            return
        del self.llm
        self.llm = None
        self.key = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], *,
                 max_new_tokens: int, batch_size: int = 256, temperature: float = 0.0, seed: int = 0,
                 desc: str = "generate") -> list[str]:
        from vllm import SamplingParams

        self.load(model, tokenizer)
        params = SamplingParams(temperature=temperature, top_p=1.0, max_tokens=max_new_tokens, seed=seed,
                                stop_token_ids=[tokenizer.eos_token_id], skip_special_tokens=True)
        requests = [{"prompt_token_ids": ids} for ids in prompt_ids(tokenizer, prompts)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)  # vLLM batches internally
        return [o.outputs[0].text for o in outputs]
