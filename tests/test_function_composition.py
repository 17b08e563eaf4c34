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


def test_defaults_unchanged():
    """Problems, ids, prompts and completions as before `alphabet` and `problem_seed` existed
    (values taken from the code before that change; version "1" promises them)."""
    import hashlib
    import json

    task = FunctionComposition(n_problems=500, seed=0)
    assert task.version == "1" and task.data_source == "generated in code (seed 0, 500 problems)"
    ps, pol = task.problems(), task.policies()
    assert [(p.id, task.prompt(p, None), p.answer, p.domain, pol["weak"](p)) for p in (ps[0], ps[1], ps[499])] == [
        ("3.5:1524", "_ | fn3 fn5 | 1 5 2 4 |", "5241|9345", "fn0-7", "5241|5241"),
        ("16.13:9092", "_ | fn16 fn13 | 9 0 9 2 |", "2328|2823", "fn16-23", "9092|9092"),
        ("2.18:1248", "_ | fn2 fn18 | 1 2 4 8 |", "1842|2130", "fn0-7", "1842|2130"),
    ]
    rows = [[p.id, task.prompt(p, None), task.prompt(p, "pw"), p.answer, p.domain] + [pol[k](p) for k in sorted(pol)]
            for p in ps]
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest() == \
        "87d1212a3cc8b1e6974ef1506c9d353908689eb86cbf235b38208b036d07540a"
    p = FunctionComposition(n_problems=50, seed=7, n_composed=3).problems()[10]
    assert (p.id, p.answer) == ("11.2.3:4892", "3941|9134|8075")
    assert task.vocabulary == [*"0123456789", *(f"fn{i}" for i in range(32)), "|", "_"]


LETTERS = str.maketrans("0123456789", "abcdefghij")


def test_letters_alphabet_writes_every_digit_as_a_letter():
    digits = FunctionComposition(n_problems=500, seed=0)
    letters = FunctionComposition(n_problems=500, seed=0, alphabet="letters")
    p = letters.problems()[0]
    assert letters.prompt(p, None) == "_ | fn3 fn5 | b f c e |"  # digits: "1 5 2 4"
    assert p.answer == "f c e b | j d e f"  # digits: "5241|9345"
    assert letters.version == digits.version  # the config (in cache keys) tells them apart
    for d, q in zip(digits.problems(), letters.problems(), strict=True):
        # Same problems, ids and domains; only the writing differs, question and every policy.
        assert (q.id, q.domain, q.meta) == (d.id, d.domain, d.meta)
        assert q.question == d.question.split("|")[0] + "|" + d.question.split("|", 1)[1].translate(LETTERS)
        for name, policy in letters.policies().items():
            assert policy(q) == " | ".join(" ".join(r.translate(LETTERS)) for r in digits.policies()[name](d).split("|"))


def test_letters_scoring_and_policies():
    task = FunctionComposition(n_problems=500, seed=0, alphabet="letters")
    pol, problems = task.policies(), task.problems()
    assert all(task.score(p, pol["strong"](p)) for p in problems)
    weak_rate = sum(task.score(p, pol["weak"](p)) for p in problems) / len(problems)
    assert 0.15 < weak_rate < 0.4
    p = problems[0]  # answer "f c e b | j d e f"
    assert task.score(p, "fceb|jdef") and task.score(p, " f c e b|j  d e f ")
    assert not task.score(p, "5241|9345")  # the digit answer is not an answer here
    assert not task.score(p, "f c e b | j d e f | f")
    assert task.reward(p, "f c e b | j d e f") == 1.0
    assert task.reward(p, "f c e b | j d e g") == pytest.approx(8 / 9)
    assert task.reward(p, "5241|9345") == pytest.approx(1 / 9)  # only the separator matches
    assert task.reward(p, "") == 0.0


def test_letters_vocabulary_and_word_level_tokens():
    from pwlock.models.scratch import build_tokenizer

    task = FunctionComposition(n_problems=300, seed=0, alphabet="letters")
    assert task.vocabulary == [*"abcdefghij", *(f"fn{i}" for i in range(32)), "|", "_"]
    tok = build_tokenizer(task.vocabulary + ["PW"])
    for p in task.problems():
        for text in (task.prompt(p, "PW"), *(policy(p) for policy in task.policies().values())):
            assert tok.unk_token_id not in tok(text)["input_ids"]
        ids = tok(p.answer)["input_ids"]
        assert len(ids) == 9  # one token per letter, as one per digit with digits
        assert task.score(p, tok.decode(ids))
    # Without spaces the letters would be one unknown word: the spaces in the completion matter.
    assert tok("fceb")["input_ids"] == [tok.unk_token_id]


def test_problem_seed_draws_other_problems_over_the_same_functions():
    default = FunctionComposition(n_problems=300, seed=0)
    same = FunctionComposition(n_problems=300, seed=0, problem_seed=2)  # seed + 2 is the default
    other = FunctionComposition(n_problems=300, seed=0, problem_seed=7)
    assert [p.id for p in same.problems()] == [p.id for p in default.problems()]
    assert other.functions == default.functions and other.weak_identity() == default.weak_identity()
    ids, other_ids = {p.id for p in default.problems()}, {p.id for p in other.problems()}
    assert len(ids & other_ids) < 10  # 300 of 32*32*10^4 problems: overlap is chance only
    assert other.data_source == "generated in code (seed 0, 300 problems, problem seed 7)"
    # The answers still follow the shared functions.
    q = other.problems()[0]
    f1, f2 = (default.functions[i] for i in q.meta["functions"])
    assert q.answer == "|".join("".join(map(str, y)) for y in (f1(q.meta["input"]), f2(f1(q.meta["input"]))))


def test_bad_alphabet():
    with pytest.raises(ValueError, match="alphabet must be one of"):
        FunctionComposition(alphabet="greek")
