"""The vLLM backend's weight cache, on CPU: a fake engine records every (re)load.

vLLM itself needs a GPU; what is tested here is the decision to start a new engine, which
must happen exactly when the weights to serve differ from the loaded ones.
"""

from __future__ import annotations

import gc

import torch

from pwlock.models import build_model
from pwlock.vllm_backend import VLLMGenerator, WeightsKey


class FakeEngine:
    """Stands in for `vllm.LLM`: records the folders it was started on."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, *, model: str, tokenizer: str, **engine_args) -> object:
        self.loads.append(model)
        return object()


def old_key(model: torch.nn.Module) -> tuple[int, int]:
    """The key pwlock used before: it ignores which object lives at an address."""
    return id(model), sum(p._version for p in model.parameters())


def test_a_new_model_at_a_freed_models_address_is_reloaded(tokenizer):
    """Models built alike have equal version sums; when Python reuses the address of a freed
    one, the old key (id, version sum) said "already loaded" and served stale weights. Whether
    CPython reuses an address is up to its allocator, so the test does not depend on it: every
    new model must be reloaded, and a key must never match a model other than its own, whatever
    the addresses (`collisions` counts the cases the old key got wrong, when they happen)."""
    engine = FakeEngine()
    generator = VLLMGenerator(engine=engine)
    previous_key, previous_old, collisions = None, None, 0
    for seed in range(8):
        model = build_model(tokenizer, hidden_size=8, layers=1, heads=1, seed=seed)
        collisions += old_key(model) == previous_old
        assert previous_key is None or not previous_key.matches(model)
        generator.load(model, tokenizer)
        assert len(engine.loads) == seed + 1  # one engine per distinct model, address reuse or not
        previous_key, previous_old = WeightsKey(model), old_key(model)
        del model
        gc.collect()


def test_same_weights_are_not_reloaded_and_changed_weights_are(tokenizer):
    engine = FakeEngine()
    generator = VLLMGenerator(engine=engine)
    model = build_model(tokenizer, hidden_size=8, layers=1, heads=1, seed=0)
    generator.load(model, tokenizer)
    generator.load(model, tokenizer)
    assert len(engine.loads) == 1

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum().backward()
    optimizer.step()  # an optimizer step changes the weights in place
    generator.load(model, tokenizer)
    assert len(engine.loads) == 2

    with torch.no_grad():  # an in-place edit outside any optimizer
        next(model.parameters()).mul_(1.0)
    generator.load(model, tokenizer)
    assert len(engine.loads) == 3

    name, param = next(iter(model.named_parameters()))
    replaced = torch.nn.Parameter(param.detach().clone())
    module = model.get_submodule(name.rsplit(".", 1)[0])
    setattr(module, name.rsplit(".", 1)[1], replaced)  # a new tensor (version 0) in its place
    generator.load(model, tokenizer)
    assert len(engine.loads) == 4

    other = build_model(tokenizer, hidden_size=8, layers=1, heads=1, seed=0)  # equal weights, other object
    generator.load(other, tokenizer)
    assert len(engine.loads) == 5
    generator.close()
    assert generator.llm is None and generator.key is None


def test_weights_key_does_not_keep_the_model_alive(tokenizer):
    model = build_model(tokenizer, hidden_size=8, layers=1, heads=1, seed=0)
    key = WeightsKey(model)
    assert key.matches(model)
    del model
    gc.collect()
    assert key.model() is None
