"""The method contract's own rules, checked without training anything: what a budget reports as spent,
what its errors say, what the harness accepts back from a method, registering a method by name, and the
weight digest that keeps `prompt_only` methods honest. (mutmut found each of these unasserted.)"""

import re

import pytest
import torch

from pwlock.elicit import api
from pwlock.elicit.api import DemosAndReward, Elicited, PromptOnly, Reward, check_elicited, weights_hash
from pwlock.errors import MethodError
from pwlock.types import Example


def score(prompts, completions):
    return [float(p == c) for p, c in zip(prompts, completions)]


def test_reward_errors_say_how_many_were_asked():
    budget = Reward(["a", "b"], samples=3, score=score)
    with pytest.raises(ValueError, match=re.escape("reward: 2 prompts for 1 completions")):
        budget.reward(["a", "b"], ["a"])
    assert budget.used == 0 and budget.calls == 0  # a refused call costs nothing
    budget.reward(["a", "b"], ["a", "b"])
    with pytest.raises(MethodError, match=re.escape("reward budget of 3 samples exceeded: 2 scored, 2 more asked")):
        budget.reward(["a", "b"], ["a", "b"])
    assert budget.spent() == {"reward_samples": 2, "reward_calls": 1} and budget.left() == 1


def test_each_budget_reports_its_cost_columns():
    examples = [Example("p1", "c1"), Example("p2", "c2")]
    assert PromptOnly(["p1"], examples=examples).spent() == {"demos": 2}
    both = DemosAndReward(["p1", "p2"], examples=examples[:1], samples=4, score=score)
    both.reward(["p1"], ["p1"])
    assert both.spent() == {"demos": 1, "reward_samples": 1, "reward_calls": 1}
    assert api.Unsupervised(["p1"]).spent() == {}


class Plain:
    name = "plain"
    settings = ("demos",)

    def __call__(self, model, tokenizer, context, budget, seed):
        return Elicited(model)


def test_what_a_method_returns_is_checked_with_errors_that_name_it():
    model = torch.nn.Linear(2, 2)
    out = Elicited(model)
    assert check_elicited(out, "mine") is out
    with pytest.raises(MethodError, match=re.escape("method mine: returned dict, not pwlock.elicit.api.Elicited")):
        check_elicited({"model": model}, "mine")
    with pytest.raises(MethodError, match=re.escape("method mine: Elicited.model is a str, not a torch model")):
        check_elicited(Elicited("gpt"), "mine")  # type: ignore[arg-type]
    for what in ("prompt", "hook"):
        with pytest.raises(MethodError, match=re.escape(f"method mine: Elicited.{what} must be callable or None")):
            check_elicited(Elicited(model, **{what: "not callable"}), "mine")  # type: ignore[arg-type]


def test_a_bad_method_object_is_named_with_its_kind_spec_and_call():
    bad = type("NotCallable", (), {"name": "nc", "settings": ("demos",)})()
    with pytest.raises(MethodError, match=re.escape(
            "method my.py:NotCallable: must be callable as (model, tokenizer, context, budget, seed)")):
        api.check_elicitor(bad, "my.py:NotCallable")
    wrong = type("Wrong", (), {"name": "w", "settings": ("telepathy",), "__call__": Plain.__call__})()
    with pytest.raises(MethodError, match=re.escape("method w.py:Wrong: `settings` must be a non-empty tuple of "
                                                    f"{api.SETTINGS}")):
        api.check_elicitor(wrong, "w.py:Wrong")


def test_register_makes_a_method_resolvable_by_name(monkeypatch):
    monkeypatch.setattr(api._REGISTRY, "_by_name", dict(api.registered()))  # leave the real registry as it was
    method = Plain()
    assert api.register(method) is method
    assert api.resolve("plain") is method and api.registered()["plain"] is method
    with pytest.raises(MethodError, match="method 'nc': must be callable"):
        api.register(type("NC", (), {"name": "nc", "settings": ("demos",)})())


def test_weights_hash_sees_every_parameter_buffer_and_name():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    digest = weights_hash(model)
    assert re.fullmatch(r"[0-9a-f]{32}", digest)  # blake2b, 16 bytes
    assert digest == weights_hash(model)
    with torch.no_grad():
        model[0].weight[1, 2] += 1e-7  # a change of a few ulps to one weight changes the digest
    changed = weights_hash(model)
    assert changed != digest
    model[1].running_mean += 1.0  # buffers count too
    assert weights_hash(model) != changed
    twin = torch.nn.Sequential()
    twin.add_module("other", model[0])
    twin.add_module("names", model[1])
    assert weights_hash(twin) != weights_hash(model)  # same tensors under other names
