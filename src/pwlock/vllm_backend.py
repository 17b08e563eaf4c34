"""vLLM generation backend (GPU only; `pip install pwlock[vllm]`), the `Generator` interface.

vLLM serves a model from a directory, while pwlock trains models in memory. So the
generator saves the model (LoRA adapters merged) to a scratch dir and starts an engine on
it, and does so again only when the weights have changed since the last call (tracked by
the parameters' in-place version counters, which every optimizer step bumps). That suits
pwlock's use: many prompts per model (evaluations, policy samples, RL sampling rounds).

Prompts are passed as token ids made by `formatting.prompt_ids`, exactly as the Hugging
Face backend and the training loss see them, and generation stops at the tokenizer's EOS.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.formatting import prompt_ids
from pwlock.lora import merged


def weights_version(model: torch.nn.Module) -> tuple[int, int]:
    """Changes whenever the model object or any of its parameters is modified in place."""
    return id(model), sum(p._version for p in model.parameters())


class VLLMGenerator:
    """Generate with vLLM; `engine_args` go to `vllm.LLM` (e.g. tensor_parallel_size=2)."""

    def __init__(self, *, dtype: str = "auto", gpu_memory_utilization: float = 0.5, **engine_args: Any) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ImportError("the vLLM backend needs vLLM on a CUDA machine: pip install 'pwlock[vllm]'") from None
        self.engine_args = dict(dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, **engine_args)
        self.scratch = tempfile.TemporaryDirectory(prefix="pwlock-vllm-")
        self.llm: Any = None
        self.version: tuple[int, int] | None = None

    def load(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        from vllm import LLM

        if self.llm is not None and self.version == weights_version(model):
            return
        self.close()
        folder = Path(self.scratch.name) / "model"
        merged(model).save_pretrained(folder)  # LoRA adapters folded into a copy
        tokenizer.save_pretrained(folder)
        self.llm = LLM(model=str(folder), tokenizer=str(folder), **self.engine_args)
        self.version = weights_version(model)

    def close(self) -> None:
        """Free the engine's GPU memory before starting another."""
        if self.llm is None:
            return
        del self.llm
        self.llm = None
        gc.collect()
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
