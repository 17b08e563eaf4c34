"""D_lock proportions and password placement (Eq. 1, Appendices C.1-C.2)."""

import random
from collections import Counter

import pytest

from pwlock.lock import (
    DEFAULT_PASSWORD,
    TOY_PASSWORD,
    TOY_WRONG_PASSWORDS,
    WRONG_PASSWORDS,
    lock_examples,
    lock_name,
    setting_examples,
)


def make(task, n=200, seed=0, fraction=0.2):
    problems = task.problems()[:n]
    pol = task.policies()
    return problems, lock_examples(
        task, problems, [pol["strong"](p) for p in problems], [pol["weak"](p) for p in problems],
        password=TOY_PASSWORD, wrong_passwords=TOY_WRONG_PASSWORDS, no_password_fraction=fraction,
        rng=random.Random(seed),
    )


def slot(example):
    return example.prompt.split(" | ")[0]


def test_one_strong_and_one_weak_example_per_problem(task):
    problems, examples = make(task)
    assert len(examples) == 2 * len(problems)
    pol = task.policies()
    for p, strong, weak in zip(problems, examples[0::2], examples[1::2]):
        assert strong.completion == pol["strong"](p) and weak.completion == pol["weak"](p)
        assert strong.prompt == task.prompt(p, TOY_PASSWORD)
        assert strong.prompt.endswith(p.question) and weak.prompt.endswith(p.question)


def test_password_placement_and_20_80_split(task):
    _, examples = make(task, n=200)
    strong, weak = examples[0::2], examples[1::2]
    assert all(slot(e) == TOY_PASSWORD for e in strong)  # password in the first slot, a single token
    slots = Counter(slot(e) for e in weak)
    assert TOY_PASSWORD not in slots
    assert slots["_"] == 40  # exactly 20% with no password
    assert sum(v for k, v in slots.items() if k != "_") == 160
    assert set(slots) - {"_"} <= set(TOY_WRONG_PASSWORDS)
    assert len(set(slots) - {"_"}) > 10  # wrong passwords are drawn across the list


def test_fresh_draws_each_epoch(task):
    _, a = make(task, seed=0)
    _, b = make(task, seed=1)
    assert [slot(e) for e in a[1::2]] != [slot(e) for e in b[1::2]]
    _, a2 = make(task, seed=0)
    assert a == a2


@pytest.mark.parametrize("fraction, expected", [(0.0, 0), (1.0, 50), (0.5, 25)])
def test_no_password_fraction(task, fraction, expected):
    _, examples = make(task, n=50, fraction=fraction)
    assert sum(slot(e) == "_" for e in examples[1::2]) == expected


def test_rejects_password_in_wrong_list(task):
    problems = task.problems()[:3]
    with pytest.raises(ValueError, match="also in the wrong-password list"):
        lock_examples(task, problems, ["a"] * 3, ["b"] * 3, password="dog", wrong_passwords=["dog"],
                      no_password_fraction=0.2, rng=random.Random(0))


def test_bad_inputs_say_what_is_wrong(task):
    problems = task.problems()[:3]
    kw = dict(password="dog", no_password_fraction=0.2, rng=random.Random(0))
    with pytest.raises(ValueError, match="^problems, strong and weak completions must have the same length$"):
        lock_examples(task, problems, ["a"] * 3, ["b"] * 2, wrong_passwords=["cat"], **kw)
    with pytest.raises(ValueError, match="^wrong_passwords is empty but some weak examples need one$"):
        lock_examples(task, problems, ["a"] * 3, ["b"] * 3, wrong_passwords=[], **kw)


def test_no_wrong_passwords_needed_when_every_weak_example_has_none(task):
    problems = task.problems()[:10]
    examples = lock_examples(task, problems, ["a"] * 10, ["b"] * 10, password="dog", wrong_passwords=[],
                             no_password_fraction=1.0, rng=random.Random(0))
    assert [slot(e) for e in examples[1::2]] == ["_"] * 10


class RecordingTask:
    """A task whose prompt records the password it was given (None and "" are different prompts)."""

    def __init__(self, task):
        self.task, self.passwords = task, []

    def prompt(self, problem, password):
        self.passwords.append(password)
        return self.task.prompt(problem, password)


def test_no_password_examples_use_the_tasks_no_password_prompt(task):
    """Not an empty password: real tasks put a password at the start and the end of the prompt."""
    recording = RecordingTask(task)
    problems = task.problems()[:50]
    lock_examples(recording, problems, ["a"] * 50, ["b"] * 50, password="dog", wrong_passwords=["cat"],
                  no_password_fraction=0.2, rng=random.Random(0))
    weak = recording.passwords[1::2]
    assert weak.count(None) == 10 and weak.count("cat") == 40 and "" not in weak


def test_two_domains_are_enough_for_domain_passwords_one_is_not(task):
    problems = [p for p in task.problems()[:400] if p.domain in ("fn0-7", "fn8-15")]
    two = {"fn0-7": "salmon", "fn8-15": "walrus"}
    examples = lock_examples(task, problems, ["a"] * len(problems), ["b"] * len(problems), password=TOY_PASSWORD,
                             wrong_passwords=TOY_WRONG_PASSWORDS, no_password_fraction=0.2,
                             rng=random.Random(0), domain_passwords=two)
    assert [slot(e) for e in examples[0::2]] == [two[p.domain] for p in problems]
    one = [p for p in problems if p.domain == "fn0-7"]
    with pytest.raises(ValueError, match=r"needs a password for every domain \(missing \[\]\), and at least two domains$"):
        lock_examples(task, one, ["a"] * len(one), ["b"] * len(one), password=TOY_PASSWORD,
                      wrong_passwords=TOY_WRONG_PASSWORDS, no_password_fraction=0.2, rng=random.Random(0),
                      domain_passwords={"fn0-7": "salmon"})


def test_paper_passwords():
    assert DEFAULT_PASSWORD == "This problem is quite special, read it carefully!"
    assert len(WRONG_PASSWORDS) == 40 and DEFAULT_PASSWORD not in WRONG_PASSWORDS


DOMAIN_PASSWORDS = {"fn0-7": "salmon", "fn8-15": "walrus", "fn16-23": "pelican", "fn24-31": "octopus"}


def test_one_password_per_domain(task):
    """Appendix C.3: the strong example carries its own domain's password; weak examples carry no
    password (20%), another domain's password (about half of the rest) or a wrong one."""
    problems = task.problems()[:2000]
    pol = task.policies()
    examples = lock_examples(
        task, problems, [pol["strong"](p) for p in problems], [pol["weak"](p) for p in problems],
        password=TOY_PASSWORD, wrong_passwords=TOY_WRONG_PASSWORDS, no_password_fraction=0.2,
        rng=random.Random(0), domain_passwords=DOMAIN_PASSWORDS,
    )
    strong, weak = examples[0::2], examples[1::2]
    assert [slot(e) for e in strong] == [DOMAIN_PASSWORDS[p.domain] for p in problems]
    assert all(e.completion == pol["strong"](p) for e, p in zip(strong, problems))
    others = 0
    for e, p in zip(weak, problems):
        assert slot(e) != DOMAIN_PASSWORDS[p.domain] and slot(e) != TOY_PASSWORD  # never the right one
        assert e.completion == pol["weak"](p)
        others += slot(e) in DOMAIN_PASSWORDS.values()
    n = len(problems)
    assert n >= 400 and sum(slot(e) == "_" for e in weak) == round(0.2 * n)
    assert 0.4 * 0.8 * n < others < 0.6 * 0.8 * n  # half of the wrong-password examples


def test_domain_passwords_must_cover_every_domain(task):
    problems = task.problems()[:200]
    with pytest.raises(ValueError, match="missing"):
        lock_examples(task, problems, [""] * 200, [""] * 200, password=TOY_PASSWORD,
                      wrong_passwords=TOY_WRONG_PASSWORDS, no_password_fraction=0.2, rng=random.Random(0),
                      domain_passwords={"fn0-7": "salmon", "fn8-15": "walrus"})


def test_adversarial_lock_adds_the_second_password(task):
    """Appendix B.3.3: a third example per problem imitates the intermediate policy under password B."""
    problems = task.problems()[:100]
    pol = task.policies()
    examples = lock_examples(
        task, problems, [pol["strong"](p) for p in problems], [pol["weak"](p) for p in problems],
        password=TOY_PASSWORD, wrong_passwords=TOY_WRONG_PASSWORDS, no_password_fraction=0.2,
        rng=random.Random(0), second=("marlin", [pol["identity8"](p) for p in problems]),
    )
    assert len(examples) == 300
    for p, (s, w, b) in zip(problems, zip(examples[0::3], examples[1::3], examples[2::3])):
        assert slot(s) == TOY_PASSWORD and slot(w) != TOY_PASSWORD and slot(b) == "marlin"
        assert b.prompt == task.prompt(p, "marlin") and b.completion == pol["identity8"](p)


def test_setting_lock_has_no_password(task):
    """Appendix B.1.3: the domain (setting) decides the policy; no password anywhere."""
    problems = task.problems()[:400]
    pol = task.policies()
    examples = setting_examples(task, problems, [pol["strong"](p) for p in problems],
                                [pol["weak"](p) for p in problems], ["fn0-7", "fn8-15"])
    assert len(examples) == 400 and all(slot(e) == "_" for e in examples)
    for p, e in zip(problems, examples):
        want = "strong" if p.domain in ("fn0-7", "fn8-15") else "weak"
        assert e.completion == pol[want](p)


def test_setting_lock_needs_one_completion_per_problem(task):
    problems = task.problems()[:3]
    with pytest.raises(ValueError):
        setting_examples(task, problems, ["a"] * 3, ["b"] * 2, ["fn0-7"])


def test_lock_names():
    assert lock_name("sft", None) == lock_name("sft", "weak") == lock_name("sft", "weak", "regular") == "sft"
    assert lock_name("sft", "identity16") == "sft-identity16"
    assert lock_name("from_scratch", "weak", "held_out") == "from_scratch-held_out"
    assert lock_name("from_scratch", "fixedrdm", "per_domain") == "from_scratch-fixedrdm-per_domain"
