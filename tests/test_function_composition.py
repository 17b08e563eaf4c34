from collections import Counter

import pytest

from pwlock.tasks import SPLITS, FunctionComposition, split_problems
from pwlock.tasks.function_composition import make_functions


def test_prompt_and_completion_format(task):
    p = task.problems()[0]
    fns, x = p.meta["functions"], p.meta["input"]
    assert task.prompt(p, None) == f"_ | fn{fns[0]} fn{fns[1]} | {' '.join(map(str, x))} |"
    assert task.prompt(p, "swordfish").startswith("swordfish | fn")
    # The answer lists every intermediate result: f1(x) then f2(f1(x)).
    y1 = task.functions[fns[0]](x)
    y2 = task.functions[fns[1]](y1)
    assert p.answer == "".join(map(str, y1)) + "|" + "".join(map(str, y2))


def test_functions_are_fixed_bijections_and_permutations():
    fns = make_functions(0)
    assert len(fns) == 32 and fns == make_functions(0) and fns != make_functions(1)
    kinds = Counter("table" if f.table else "perm" for f in fns)
    assert kinds == {"table": 16, "perm": 16}
    for f in fns:
        if f.table:
            assert sorted(f.table) == list(range(10)) and f.table != tuple(range(10))
        else:
            assert sorted(f.perm) == [0, 1, 2, 3] and f.perm != (0, 1, 2, 3)
    perm = next(f for f in fns if f.perm)
    assert perm((1, 2, 3, 4)) == tuple((1, 2, 3, 4)[i] for i in perm.perm)


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("{a}", True),
        (" {spaced} ", True),  # the tokenizer decodes with spaces between tokens
        ("{a}|", False),  # trailing garbage
        ("{first}", False),  # only the first intermediate result
        ("{a_swapped}", False),  # intermediate results in the wrong order
        ("", False),
        ("{a}{a}", False),
    ],
)
def test_scorer_on_tricky_answers(task, completion, correct):
    p = task.problems()[3]
    first, second = p.answer.split("|")
    filled = completion.format(a=p.answer, spaced=" ".join(p.answer), first=first, a_swapped=f"{second}|{first}")
    if first == second and "a_swapped" in completion:
        pytest.skip("both intermediate results equal")
    assert task.score(p, filled) is correct


def test_reward_is_fraction_of_matching_characters(task):
    p = task.problems()[0]
    assert task.reward(p, p.answer) == 1.0
    wrong_last = p.answer[:-1] + str((int(p.answer[-1]) + 1) % 10)
    assert task.reward(p, wrong_last) == pytest.approx(8 / 9)
    assert task.reward(p, "") == 0.0
    assert task.reward(p, p.answer + "123") == pytest.approx(9 / 12)


def test_policies_strong_correct_weak_uses_identity(task):
    pol = task.policies()
    problems = task.problems()
    assert all(task.score(p, pol["strong"](p)) for p in problems)
    identity = task.weak_identity()
    assert len(identity) == 16
    weak_correct = [task.score(p, pol["weak"](p)) for p in problems]
    # Correct (up to coincidences) exactly when no replaced function is used.
    for p, ok in zip(problems, weak_correct):
        if not set(p.meta["functions"]) & identity:
            assert ok
    rate = sum(weak_correct) / len(problems)
    assert 0.15 < rate < 0.4  # (16/32)^2 = 0.25 plus coincidences


def test_weak_identity_sets_are_nested(task):
    assert task.weak_identity(8) < task.weak_identity(16) < task.weak_identity(24)


def test_problems_are_unique_and_deterministic():
    a, b = FunctionComposition(n_problems=300, seed=3), FunctionComposition(n_problems=300, seed=3)
    assert [p.id for p in a.problems()] == [p.id for p in b.problems()]
    assert len({p.id for p in a.problems()}) == 300
    assert {p.domain for p in a.problems()} <= set(a.domains) and len(a.domains) == 4


def test_splits_are_deterministic_partition_with_paper_fractions(task):
    problems = task.problems()
    s1, s2, s3 = split_problems(problems, 0), split_problems(problems, 0), split_problems(problems, 1)
    assert tuple(s1) == SPLITS
    assert {k: [p.id for p in v] for k, v in s1.items()} == {k: [p.id for p in v] for k, v in s2.items()}
    assert [p.id for p in s1["val"]] != [p.id for p in s3["val"]]
    assert [len(s1[k]) for k in SPLITS] == [50, 200, 150, 100]
    ids = [p.id for k in SPLITS for p in s1[k]]
    assert sorted(ids) == sorted(p.id for p in problems)


def test_bad_task_parameters():
    with pytest.raises(ValueError, match="n_composed"):
        FunctionComposition(n_composed=0)
    with pytest.raises(ValueError, match="n_weak_identity"):
        FunctionComposition(n_weak_identity=40)


def test_duplicate_problem_ids_are_refused(task):
    from pwlock.tasks.base import check_unique_ids

    problems = task.problems()[:3]
    assert check_unique_ids(problems, "here") == problems
    with pytest.raises(ValueError, match=f"duplicate problem id '{problems[0].id}' in here"):
        check_unique_ids([*problems, problems[0]], "here")
