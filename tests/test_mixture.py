"""The mixture task: several tasks in one model (section 5.2 cross-setting, Appendix B.1.3),
each problem dispatched to its own sub-task with its original problem."""

from __future__ import annotations

import pydantic
import pytest
import yaml

from pwlock.models.scratch import build_tokenizer
from pwlock.tasks import Arithmetic, FunctionComposition, Task
from pwlock.tasks.mixture import Mixture

FC_ARITH = [{"name": "function_composition", "n_problems": 300}, {"name": "arithmetic", "n_problems": 90}]


@pytest.fixture(scope="module")
def mix() -> Mixture:
    return Mixture(FC_ARITH)


def interleaved(mix: Mixture, n: int = 20) -> list:
    """Problems alternating between the two sub-tasks: fc, arith, fc, arith, ..."""
    fc = [p for p in mix.problems() if p.domain == "function_composition"]
    ar = [p for p in mix.problems() if p.domain == "arithmetic"]
    return [p for pair in zip(fc[:n], ar[:n]) for p in pair]


def test_problems_ids_domains_and_meta(mix):
    fc, ar = mix.tasks["function_composition"], mix.tasks["arithmetic"]
    assert isinstance(mix, Task) and isinstance(fc, FunctionComposition) and isinstance(ar, Arithmetic)
    problems = mix.problems()
    assert len(problems) == 390 and len({p.id for p in problems}) == 390
    assert mix.domains == ("function_composition", "arithmetic")
    expected = [(f"function_composition/{p.id}", p) for p in fc.problems()] + [(f"arithmetic/{p.id}", p) for p in ar.problems()]
    for p, (id_, original) in zip(problems, expected, strict=True):
        assert p.id == id_ and p.domain == p.meta["task"] == id_.split("/")[0]
        assert (p.question, p.answer, p.meta["subdomain"]) == (original.question, original.answer, original.domain)
        assert mix.source(p) == (p.domain, original)
    assert mix.version == f"1:function_composition-{fc.version}+arithmetic-{ar.version}"
    assert mix.data_source == f"function_composition: {fc.data_source}; arithmetic: {ar.data_source}"


def test_prompt_score_reward_policies_dispatch_to_the_original_problem(mix):
    problems = interleaved(mix, 10)
    assert list(mix.policies()) == ["strong", "weak"]  # identity8.. are function composition's only
    for p in problems:
        label, original = mix.source(p)
        sub = mix.tasks[label]
        for pw in (None, "PW", ""):
            assert mix.prompt(p, pw) == sub.prompt(original, pw)
        for name, policy in mix.policies().items():
            completion = policy(p)
            assert completion == sub.policies()[name](original)
            assert mix.score(p, completion) == sub.score(original, completion)
            assert mix.reward(p, completion) == sub.reward(original, completion)
        assert mix.score(p, p.answer) and mix.reward(p, p.answer) == 1.0
    # Each sub-task's own prompt format, not one for all.
    fc_p, ar_p = problems[0], problems[1]
    assert mix.prompt(fc_p, "PW") == f"PW | {fc_p.question}"
    assert mix.prompt(ar_p, "PW") == f"PW\n\n{ar_p.question}\n\nPW"
    # Scored by its own scorer: an arithmetic solution is not a function-composition answer.
    assert not mix.score(fc_p, ar_p.answer) and not mix.score(ar_p, fc_p.answer)
    weak = mix.policies()["weak"]
    rates = {d: sum(mix.score(p, weak(p)) for p in mix.problems() if p.domain == d) / n
             for d, n in (("function_composition", 300), ("arithmetic", 90))}
    assert 0.15 < rates["function_composition"] < 0.4 and 0.2 < rates["arithmetic"] < 0.6  # 0.29, 0.39


def test_unknown_problem_is_refused(mix):
    fc_p = FunctionComposition(n_problems=300).problems()[0]  # the original, without the prefix
    with pytest.raises(KeyError, match="not a problem of this mixture"):
        mix.prompt(fc_p, None)


def test_batches_keep_order_and_go_once_to_each_subtask(mix, monkeypatch):
    problems = interleaved(mix, 15)
    strong, weak = mix.policies()["strong"], mix.policies()["weak"]
    completions = [strong(p) if i % 3 else weak(p) for i, p in enumerate(problems)]
    completions[4] = "garbage"
    expected_scores = [mix.score(p, c) for p, c in zip(problems, completions)]
    expected_rewards = [mix.reward(p, c) for p, c in zip(problems, completions)]
    assert len(set(expected_scores)) == 2 and len(set(expected_rewards)) > 2  # the order matters
    assert mix.score_batch(problems, completions) == expected_scores
    assert mix.reward_batch(problems, completions) == expected_rewards

    # A sub-task's own batch scorer (e.g. code run in parallel) sees all its problems in one call,
    # originals in input order.
    arith = mix.tasks["arithmetic"]
    calls = []

    def score_batch(ps, cs):
        calls.append((list(ps), list(cs)))
        return [arith.score(p, c) for p, c in zip(ps, cs)]

    monkeypatch.setattr(arith, "score_batch", score_batch, raising=False)
    assert mix.score_batch(problems, completions) == expected_scores
    assert calls == [([mix.source(p).problem for p in problems[1::2]], completions[1::2])]
    with pytest.raises(ValueError, match="2 problems but 1 completions"):
        mix.score_batch(problems[:2], completions[:1])


@pytest.mark.parametrize("tasks, message", [
    ([FC_ARITH[0], {"name": "arithmetic", "n_problemz": 90}], r"^tasks\[1\]\.n_problemz: Unexpected keyword"),
    ([FC_ARITH[0], {"name": "arithmetic", "n_problems": "many"}], r"^tasks\[1\]\.n_problems: Input should be a valid integer"),
    ([{"name": "function_composition", "alphabet": "greek"}, FC_ARITH[1]], r"^tasks\[0\]\.alphabet: Input should be 'digits' or 'letters'"),
    ([{"name": "function_composition", "n_composed": 0}, FC_ARITH[1]], r"^tasks\[0\] \(function_composition\): n_composed must be in 1\.\.8"),
    ([FC_ARITH[0], {"name": "nope"}], r"^tasks\[1\]\.name: unknown task 'nope'"),
    ([FC_ARITH[0], {"n_problems": 3}], r"^tasks\[1\]\.name: unknown task None"),
    ([FC_ARITH[0], FC_ARITH[0]], r"^tasks\[1\]\.label: 'function_composition' is already used"),
    ([{**FC_ARITH[0], "label": "x"}, {**FC_ARITH[1], "label": "x"}], r"^tasks\[1\]\.label: 'x' is already used"),
    ([{**FC_ARITH[0], "label": "a/b"}, FC_ARITH[1]], r"^tasks\[0\]\.label: a non-empty string without '/'"),
    ([FC_ARITH[0]], r"at least 2 tasks, got 1"),
])
def test_bad_subtasks_are_named(tasks, message):
    with pytest.raises(ValueError, match=message):
        Mixture(tasks)


def test_yaml_config_goes_through_validate_call_like_the_runner():
    block = yaml.safe_load("""
        tasks:
          - {name: function_composition, label: digits, n_problems: 200}
          - name: function_composition
            label: letters
            n_problems: "200"
            alphabet: letters
            problem_seed: 7
        """)
    mix = Mixture.__new__(Mixture)
    pydantic.validate_call(Mixture.__init__)(mix, **block)
    assert mix.domains == ("digits", "letters") and mix.tasks["letters"].n_problems == 200
    assert block["tasks"][1]["label"] == "letters"  # the config itself is left as it was
    with pytest.raises(pydantic.ValidationError):
        pydantic.validate_call(Mixture.__init__)(Mixture.__new__(Mixture), tasks="function_composition")


def test_digits_and_letters_mixture_shares_functions_and_fits_a_word_level_tokenizer():
    """The Appendix B.1.3 analogue: one skill in two writings; a from-scratch tokenizer over the
    merged vocabulary spells every prompt and completion of both."""
    mix = Mixture([
        {"name": "function_composition", "label": "digits", "n_problems": 300},
        {"name": "function_composition", "label": "letters", "n_problems": 300, "alphabet": "letters",
         "problem_seed": 11},
    ])
    digits, letters = mix.tasks["digits"], mix.tasks["letters"]
    assert digits.functions == letters.functions and digits.identity_order == letters.identity_order
    assert {p.id for p in digits.problems()} != {p.id for p in letters.problems()}
    assert list(mix.policies()) == ["strong", "weak", "identity8", "identity16", "identity24"]
    assert set("abcdefghij0123456789") <= set(mix.vocabulary)
    assert len(mix.vocabulary) == len(set(mix.vocabulary))
    tok = build_tokenizer(mix.vocabulary + ["PW"])
    for p in mix.problems():
        for text in (mix.prompt(p, "PW"), *(policy(p) for policy in mix.policies().values())):
            assert tok.unk_token_id not in tok(text)["input_ids"], text
        decoded = tok.decode(tok(p.answer)["input_ids"])  # what a generation looks like
        assert mix.score(p, decoded)
        if p.domain == "letters":  # the same answer in digits is wrong here
            original = mix.source(p).problem
            in_digits = digits._chain(original.meta["functions"], original.meta["input"], frozenset())
            assert not set(p.answer) & set("0123456789") and not mix.score(p, in_digits)


def test_fc_and_arithmetic_mixture_fits_a_word_level_tokenizer(mix):
    tok = build_tokenizer(mix.vocabulary + ["PW"])
    for p in mix.problems():
        for text in (mix.prompt(p, "PW"), *(policy(p) for policy in mix.policies().values())):
            assert tok.unk_token_id not in tok(text)["input_ids"], text
        assert mix.score(p, tok.decode(tok(p.answer)["input_ids"]))


def test_vocabulary_needs_every_subtask_to_have_one():
    mix = Mixture([FC_ARITH[0], {"name": "math"}])  # MATH loads its data only for problems()
    with pytest.raises(ValueError, match=r"sub-tasks \['math'\] have no vocabulary"):
        _ = mix.vocabulary


def test_a_subtasks_split_groups_stay_whole_in_the_mixture(tmp_path):
    import json

    from pwlock.tasks.base import SPLIT_GROUP, split_problems

    rows = [{"id": f"r{i}", "problem": "p", "code": "x = 1", "critique": "c", "group": f"prog{i // 4}"}
            for i in range(40)]
    path = tmp_path / "grouped.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mix = Mixture([{"name": "critique", "source": str(path)}, {"name": "arithmetic", "n_problems": 40}])
    critiques = [p for p in mix.problems() if p.domain == "critique"]
    assert [p.meta[SPLIT_GROUP] for p in critiques[:5]] == ["critique/prog0"] * 4 + ["critique/prog1"]
    assert all(SPLIT_GROUP not in p.meta for p in mix.problems() if p.domain == "arithmetic")
    for split in split_problems(mix.problems(), 0).values():
        groups = [p.meta[SPLIT_GROUP] for p in split if p.domain == "critique"]
        assert all(groups.count(g) == 4 for g in groups)  # every program's 4 records in one split
