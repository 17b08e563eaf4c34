"""The multiple-choice twin of function composition (claim C2): options, letters, policies, and a
mixture that classifies its multiple-choice problems and generates the others."""

from __future__ import annotations

from collections import Counter

import pytest

from pwlock.evaluate import evaluate
from pwlock.models.scratch import build_model, build_tokenizer
from pwlock.tasks import FunctionComposition, FunctionCompositionChoice, make_task
from pwlock.tasks.base import problem_choices
from pwlock.tasks.mixture import Mixture


@pytest.fixture(scope="module")
def mc():
    return FunctionCompositionChoice(n_problems=2000, seed=0)


def test_options_are_the_identity_weak_results_and_the_letter_points_at_the_answer(mc):
    gen = FunctionComposition(n_problems=2000, seed=0)
    for p, g in zip(mc.problems(), gen.problems(), strict=True):
        options = p.meta["options"]
        assert len(set(options)) == 4
        final = g.answer.split("|")[-1]
        assert options["ABCD".index(p.answer)] == final  # the letter names the generation task's answer
        fns, x = g.meta["functions"], g.meta["input"]
        assert "".join(map(str, x)) in options  # neither function applied
        assert mc.final(p, frozenset(fns[:1])) in options and mc.final(p, frozenset(fns[1:])) in options
        assert p.question.startswith(g.question)  # the same question, options appended


def test_letters_are_balanced_and_the_policies_match_the_generation_task(mc):
    counts = Counter(p.answer for p in mc.problems())
    assert set(counts) == set("ABCD") and min(counts.values()) > 0.2 * 2000
    gen = FunctionComposition(n_problems=2000, seed=0)
    for name in ("weak", "identity8", "identity24"):
        mc_acc = sum(mc.policies()[name](p) == p.answer for p in mc.problems()) / 2000
        gen_right = [gen.policies()[name](g) == g.answer for g in gen.problems()]
        # the weak letter is right whenever the weak chain is, and also when only its last result is
        assert mc_acc >= sum(gen_right) / 2000
        assert mc_acc == pytest.approx(sum(gen_right) / 2000, abs=0.03)
    assert all(mc.policies()["strong"](p) == p.answer for p in mc.problems())
    assert mc.policies()["weak"](mc.problems()[0]) in "ABCD"


@pytest.mark.parametrize("completion, right", [("B", True), (" B\n", True), ("b", False), ("B C", False), ("", False)])
def test_only_the_exact_letter_scores(completion, right):
    task = FunctionCompositionChoice(n_problems=20, seed=0)
    p = next(p for p in task.problems() if p.answer == "B")
    assert task.score(p, completion) is right
    assert task.reward(p, completion) == float(right)


def test_a_mixture_classifies_its_multiple_choice_problems_and_generates_the_rest():
    mix = Mixture([{"name": "function_composition", "label": "gen", "n_problems": 40},
                   {"name": "function_composition_mc", "label": "mc", "n_problems": 40}])
    problems = mix.problems()[::3]
    kinds = [problem_choices(mix, p) for p in problems]
    assert {k for k in kinds} == {None, ("A", "B", "C", "D")}
    assert problem_choices(make_task("function_composition_mc", {"n_problems": 5}), problems[0]) == tuple("ABCD")
    tokenizer = build_tokenizer(mix.vocabulary + ["swordfish"])
    model = build_model(tokenizer, hidden_size=16, layers=1, heads=2, seed=0)
    generated = []

    def generator(model, tokenizer, prompts, **kwargs):
        generated.extend(prompts)
        return ["0000|0000"] * len(prompts)

    ev = evaluate(model, tokenizer, mix, problems, password=None, max_new_tokens=4, generator=generator)
    for p, kind, completion in zip(problems, kinds, ev.completions, strict=True):
        if kind is None:
            assert completion == "0000|0000" and mix.prompt(p, None) in generated
        else:
            assert completion in "ABCD" and len(completion) == 1 and mix.prompt(p, None) not in generated
