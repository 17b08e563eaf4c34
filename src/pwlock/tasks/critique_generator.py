"""Procedural buggy code and reference critiques, made from correct Python solutions.

The paper (Appendix E.2) asked GPT-4 to break its own correct solutions and explain the
bug. Offline we do the same with `ast`: take a correct program (HumanEval prompt +
canonical solution), apply one small mutation inside the entry-point function, check
that the mutant differs, parses and fails the HumanEval tests, and write an explanation
naming the line, what is wrong and the fix, e.g.

    Line 5: `range(len(numbers) - 1)` stops one step too early; it should be
    `range(len(numbers))`, so the last value `len(numbers) - 1` is never used.

Programs are normalised first (docstrings removed, since the problem statement carries
them, then `ast.unparse`), so the line numbers in explanations are those of the code
shown to the model.

Validation runs each mutant with its HumanEval test program in a plain
`subprocess.run([sys.executable, ...], timeout=...)`: these are the benchmark's own
canonical programs with one operator changed, so no sandbox is used (a timeout counts
as failing: the mutant hangs). Mutants that still pass the tests are equivalent
programs and are dropped. `validate=False` skips this (then some "bugs" may be
harmless).
"""

from __future__ import annotations

import ast
import copy
import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MUTATION_KINDS = (
    "range_bound",
    "index_off_by_one",
    "comparison",
    "arithmetic",
    "swap_branches",
    "return_value",
    "remove_negation",
    "bool_op",
    "wrong_constant",
    "wrong_function",
)
"""The kinds of bug the generator makes; the critique task uses them as its domains."""


@dataclass(frozen=True)
class Site:
    """Where a mutation can be applied: a kind and the node's index in `ast.walk` of the
    entry-point function's body (the same index finds the node in a deep copy)."""

    kind: str
    index: int


@dataclass(frozen=True)
class Mutant:
    """One buggy version of a program and the explanation of its bug."""

    kind: str
    """One of MUTATION_KINDS."""
    line: int
    """1-based line of `code` where the bug is."""
    code: str
    """The buggy program."""
    explanation: str
    """The reference critique: line, what is wrong, the fix."""


@dataclass(frozen=True)
class CritiqueRecord:
    """A (problem, buggy code, reference critique) triple, as in Appendix E.2."""

    id: str
    task_id: str
    """The HumanEval problem the mutant was made from (several records share one)."""
    problem: str
    """The problem statement (HumanEval prompt: signature and docstring)."""
    code: str
    """The buggy program."""
    critique: str
    """The reference critique."""
    kind: str
    line: int
    original: str
    """The correct (normalised) program the mutant was made from."""


# ---------------------------------------------------------------------------
# Normalising programs


# CPython 3.11's AST constructor tracks its recursion depth in state shared by all threads,
# so two threads parsing at once can fail with "SystemError: AST constructor recursion depth
# mismatch"; generate_critiques runs mutants_for in threads (for the test subprocesses).
_AST_LOCK = threading.Lock()


def _parse(code: str) -> ast.Module:
    with _AST_LOCK:
        return ast.parse(code)


def clean_source(source: str) -> str:
    """`source` without function/class/module docstrings, as `ast.unparse` writes it."""
    tree = _parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _entry_body_nodes(tree: ast.Module, entry_point: str) -> list[ast.AST]:
    """Nodes of the entry-point function's body (not its signature), in `ast.walk` order."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            nodes: list[ast.AST] = []
            for stmt in node.body:
                nodes.extend(ast.walk(stmt))
            return nodes
    raise ValueError(f"no top-level function {entry_point!r}")


# ---------------------------------------------------------------------------
# Small AST helpers

def _src(node: ast.AST) -> str:
    return ast.unparse(node)


def _int(node: ast.AST) -> int | None:
    """The value of an int literal (including `-1`), else None; bools are not ints here."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _int(node.operand)
        return None if v is None else -v
    return None


def _const(v: int) -> ast.expr:
    return ast.Constant(v) if v >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-v))


def _shift(expr: ast.expr, delta: int) -> ast.expr:
    """`expr + delta`, simplified: 3 -> 4, `n - 1` + 1 -> `n`, `n` - 1 -> `n - 1`."""
    v = _int(expr)
    if v is not None:
        return _const(v + delta)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)):
        k = _int(expr.right)
        if k is not None:
            k = k + delta if isinstance(expr.op, ast.Add) else k - delta
            if k == 0:
                return copy.deepcopy(expr.left)
            op: ast.operator = ast.Add() if k > 0 else ast.Sub()
            return ast.BinOp(copy.deepcopy(expr.left), op, ast.Constant(abs(k)))
    op = ast.Add() if delta > 0 else ast.Sub()
    return ast.BinOp(copy.deepcopy(expr), op, ast.Constant(abs(delta)))


def _is_shiftable(expr: ast.expr) -> bool:
    """Index expressions whose off-by-one we can state plainly: literals and `x +/- k`."""
    if _int(expr) is not None:
        return True
    return isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)) \
        and _int(expr.right) is not None


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


# ---------------------------------------------------------------------------
# Mutation kinds. Each has `applies(node) -> bool` and `mutate(node, rng, names) -> text`:
# `mutate` changes the node in place (on a deep copy of the program) and returns the
# explanation without its "Line N: " prefix. `names` are the variables of the function.

def _range_applies(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
        return False
    if node.keywords or not 1 <= len(node.args) <= 3 or any(isinstance(a, ast.Starred) for a in node.args):
        return False
    return len(node.args) < 3 or _int(node.args[2]) not in (None, 0)


def _range_mutate(node: ast.Call, rng: random.Random, names: Sequence[str]) -> str:
    good = _src(node)
    d = 1 if len(node.args) < 3 or _int(node.args[2]) > 0 else -1  # direction of iteration
    i_stop = 0 if len(node.args) == 1 else 1
    stop = node.args[i_stop]
    # A stop written `x - 1` most naturally goes wrong as `x`; otherwise pick a way at random.
    late = isinstance(stop, ast.BinOp) and isinstance(stop.op, ast.Sub) and _int(stop.right) == d
    way = "stop_late" if late else rng.choice(["stop_early", "stop_late", "start_late"])
    if way == "start_late":
        start = node.args[0] if len(node.args) > 1 else ast.Constant(0)
        node.args = [_shift(start, d), *node.args[1 if len(node.args) > 1 else 0:]]
        return (f"`{_src(node)}` starts one step too late; it should be `{good}`, "
                f"so the first value `{_src(start)}` is skipped.")
    if way == "stop_early":
        node.args[i_stop] = _shift(stop, -d)
        return (f"`{_src(node)}` stops one step too early; it should be `{good}`, "
                f"so the last value `{_src(_shift(stop, -d))}` is never used.")
    node.args[i_stop] = _shift(stop, d)
    return (f"`{_src(node)}` goes one step too far; it should be `{good}`, "
            f"so it also runs for `{_src(stop)}`, which is outside the intended range.")


def _index_applies(node: ast.AST) -> bool:
    if not isinstance(node, ast.Subscript):
        return False
    s = node.slice
    if isinstance(s, ast.Slice):
        return s.step is None and (s.lower is not None or s.upper is not None)
    return _is_shiftable(s)


def _index_mutate(node: ast.Subscript, rng: random.Random, names: Sequence[str]) -> str:
    good = _src(node)
    s = node.slice
    if not isinstance(s, ast.Slice):
        v = _int(s)
        node.slice = _shift(s, -1 if v is not None and v < 0 else 1)
        return (f"`{_src(node)}` uses the wrong element (off by one): the index should be "
                f"`{_src(s)}`, not `{_src(node.slice)}`; it should be `{good}`.")
    bounds = [b for b in ("lower", "upper") if getattr(s, b) is not None]
    bound = rng.choice(bounds)
    old = getattr(s, bound)
    setattr(s, bound, _shift(old, 1 if bound == "lower" else -1))
    if bound == "lower":
        return (f"the slice `{_src(node)}` starts one element too late and drops the element at "
                f"index `{_src(old)}`; it should be `{good}`.")
    return (f"the slice `{_src(node)}` ends one element too early and drops the element at "
            f"index `{_src(_shift(old, -1))}`; it should be `{good}`.")


_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
         ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
         ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


def _compare_applies(node: ast.AST) -> bool:
    return isinstance(node, ast.Compare) and any(type(op) in _FLIP for op in node.ops)


def _compare_mutate(node: ast.Compare, rng: random.Random, names: Sequence[str]) -> str:
    good = _src(node)
    i = rng.choice([i for i, op in enumerate(node.ops) if type(op) in _FLIP])
    old = type(node.ops[i])
    new = _FLIP[old]
    node.ops[i] = new()
    bad_sym, good_sym = _SYMBOL[new], _SYMBOL[old]
    if old in (ast.Lt, ast.Gt):
        why = "so the equal case is wrongly included"
    elif old in (ast.LtE, ast.GtE):
        why = "so the equal case is wrongly excluded"
    else:
        why = "so it tests the opposite condition"
    return f"`{_src(node)}` uses `{bad_sym}` where it should use `{good_sym}` (`{good}`), {why}."


_ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
          ast.FloorDiv: ast.Mod, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_OP_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
              ast.Mod: "%", ast.Pow: "**"}


def _is_sequence(node: ast.AST) -> bool:
    return _is_str(node) or isinstance(node, (ast.List, ast.ListComp, ast.Tuple))


def _arith_applies(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp):
        # `'a' - s` or `[x] - xs` is not a plausible slip, only arithmetic is mutated
        return type(node.op) in _ARITH and not (_is_sequence(node.left) or _is_sequence(node.right))
    return isinstance(node, ast.AugAssign) and type(node.op) in _ARITH and not _is_sequence(node.value)


def _arith_mutate(node: ast.BinOp | ast.AugAssign, rng: random.Random, names: Sequence[str]) -> str:
    good = _src(node)
    old = type(node.op)
    node.op = _ARITH[old]()
    bad_sym, good_sym = _OP_SYMBOL[_ARITH[old]], _OP_SYMBOL[old]
    return (f"`{_src(node)}` uses `{bad_sym}` where it should use `{good_sym}`; it should be "
            f"`{good}`, so the computed value is wrong.")


def _swap_applies(node: ast.AST) -> bool:
    if isinstance(node, ast.IfExp):
        return True
    # a real `else:` (an `elif` chain would turn into nested ifs)
    return isinstance(node, ast.If) and bool(node.orelse) and not (
        len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If))


def _swap_mutate(node: ast.If | ast.IfExp, rng: random.Random, names: Sequence[str]) -> str:
    if isinstance(node, ast.IfExp):
        good = _src(node)
        node.body, node.orelse = node.orelse, node.body
        return (f"in `{_src(node)}` the two outcomes are swapped: the first value is used when "
                f"`{_src(node.test)}` is false; it should be `{good}`.")
    node.body, node.orelse = node.orelse, node.body
    return (f"the two branches of `if {_src(node.test)}:` are swapped: the code under `else` "
            f"should run when `{_src(node.test)}` holds and the code under `if` when it does not; "
            f"swap them back (or negate the condition).")


def _return_applies(node: ast.AST) -> bool:
    if not isinstance(node, ast.Return) or node.value is None:
        return False
    v = node.value
    return isinstance(v, ast.Name) or (isinstance(v, ast.Constant) and type(v.value) in (bool, int))


def _return_mutate(node: ast.Return, rng: random.Random, names: Sequence[str]) -> str | None:
    good = _src(node)
    v = node.value
    if isinstance(v, ast.Name):
        others = [n for n in names if n != v.id]
        if not others:
            return None
        node.value = ast.Name(rng.choice(others), ast.Load())
        return f"`{_src(node)}` returns the wrong variable; it should return `{v.id}` (`{good}`)."
    assert isinstance(v, ast.Constant)
    node.value = ast.Constant(not v.value if isinstance(v.value, bool) else v.value + 1)
    return f"`{_src(node)}` returns the wrong value; it should be `{good}`."


def _negation_applies(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)


def _negation_mutate(node: ast.UnaryOp, rng: random.Random, names: Sequence[str]) -> str:
    # the caller puts the operand in the node's place (`_replace`): a node can't drop itself
    good = _src(node)
    return (f"the negation is missing: `{_src(node.operand)}` should be `{good}`, "
            f"so the condition is inverted.")


def _boolop_applies(node: ast.AST) -> bool:
    return isinstance(node, ast.BoolOp)


def _boolop_mutate(node: ast.BoolOp, rng: random.Random, names: Sequence[str]) -> str:
    good = _src(node)
    was_and = isinstance(node.op, ast.And)
    node.op = ast.Or() if was_and else ast.And()
    if was_and:
        why = "it holds as soon as one part is true, while every part must hold"
    else:
        why = "it requires every part to hold, while any one of them should be enough"
    bad_word, good_word = ("or", "and") if was_and else ("and", "or")
    return f"`{_src(node)}` uses `{bad_word}` where it should use `{good_word}` (`{good}`): {why}."


def _constant_applies(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp):
        return _int(node.left) is not None or _int(node.right) is not None
    return isinstance(node, ast.Compare) and any(_int(x) is not None for x in node.comparators)


def _constant_mutate(node: ast.BinOp | ast.Compare, rng: random.Random, names: Sequence[str]) -> str:
    good = _src(node)
    if isinstance(node, ast.BinOp):
        field = rng.choice([f for f in ("left", "right") if _int(getattr(node, f)) is not None])
        old = getattr(node, field)
        setattr(node, field, _shift(old, 1))
        new = getattr(node, field)
    else:
        i = rng.choice([i for i, x in enumerate(node.comparators) if _int(x) is not None])
        old = node.comparators[i]
        new = node.comparators[i] = _shift(old, 1)
    return f"`{_src(node)}` uses `{_src(new)}` where it should use `{_src(old)}`; it should be `{good}`."


_SWAP_FUNCTION = {"min": "max", "max": "min", "any": "all", "all": "any"}
_SWAP_METHOD = {"lower": "upper", "upper": "lower", "startswith": "endswith", "endswith": "startswith",
                "islower": "isupper", "isupper": "islower", "lstrip": "rstrip", "rstrip": "lstrip"}


def _function_applies(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Name):
        return f.id in _SWAP_FUNCTION or f.id == "sorted"
    return isinstance(f, ast.Attribute) and (f.attr in _SWAP_METHOD or f.attr == "sort")


def _function_mutate(node: ast.Call, rng: random.Random, names: Sequence[str]) -> str | None:
    good = _src(node)
    f = node.func
    assert isinstance(f, (ast.Name, ast.Attribute))
    name = f.id if isinstance(f, ast.Name) else f.attr
    if name in ("sorted", "sort"):
        reverse = [k for k in node.keywords if k.arg == "reverse"]
        if reverse:  # drop `reverse=...`: the order flips only if it was a literal True
            if not (isinstance(reverse[0].value, ast.Constant) and reverse[0].value.value is True):
                return None
            node.keywords = [k for k in node.keywords if k.arg != "reverse"]
            return f"`{_src(node)}` sorts in ascending order; it should be `{good}` (descending)."
        node.keywords.append(ast.keyword("reverse", ast.Constant(True)))
        return f"`{_src(node)}` sorts in descending order; it should be `{good}` (ascending)."
    new = _SWAP_FUNCTION.get(name) or _SWAP_METHOD[name]
    if isinstance(f, ast.Name):
        f.id = new
    else:
        f.attr = new
    return f"`{_src(node)}` calls `{new}` where it should call `{name}`; it should be `{good}`."


_KINDS: dict[str, tuple[Callable[[ast.AST], bool], Callable[..., str | None]]] = {
    "range_bound": (_range_applies, _range_mutate),
    "index_off_by_one": (_index_applies, _index_mutate),
    "comparison": (_compare_applies, _compare_mutate),
    "arithmetic": (_arith_applies, _arith_mutate),
    "swap_branches": (_swap_applies, _swap_mutate),
    "return_value": (_return_applies, _return_mutate),
    "remove_negation": (_negation_applies, _negation_mutate),
    "bool_op": (_boolop_applies, _boolop_mutate),
    "wrong_constant": (_constant_applies, _constant_mutate),
    "wrong_function": (_function_applies, _function_mutate),
}
assert tuple(_KINDS) == MUTATION_KINDS


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put `new` where `old` is in `tree` (used to drop a `not`)."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise ValueError("node not found")


def _variables(func_nodes: Iterable[ast.AST], tree: ast.Module, entry_point: str) -> list[str]:
    """Parameters and assigned names of the entry-point function, sorted (for return_value)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            a = node.args
            names.update(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs)
    local: set[str] = set()  # comprehension variables don't exist outside their comprehension
    for node in func_nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if isinstance(node, ast.comprehension):
            local.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    return sorted(names - local)


# ---------------------------------------------------------------------------
# Finding and applying mutations


def find_sites(code: str, entry_point: str) -> list[Site]:
    """Every place in the entry-point function where some mutation kind applies."""
    nodes = _entry_body_nodes(_parse(code), entry_point)
    return [Site(kind, i) for i, node in enumerate(nodes)
            for kind, (applies, _) in _KINDS.items() if applies(node)]


def apply_site(code: str, entry_point: str, site: Site, rng: random.Random) -> Mutant | None:
    """The mutant made at `site`, or None if it is not a real change.

    `code` must be normalised (`clean_source`), so that the line numbers of the parsed
    tree are those of the unparsed mutant.
    """
    tree = _parse(code)
    nodes = _entry_body_nodes(tree, entry_point)
    node = nodes[site.index]
    names = _variables(nodes, tree, entry_point)
    text = _KINDS[site.kind][1](node, rng, names)
    if text is None:
        return None
    if isinstance(node, ast.UnaryOp) and site.kind == "remove_negation":
        _replace(tree, node, node.operand)
    bad = ast.unparse(tree)
    if bad == code:
        return None
    _parse(bad)  # must still be valid Python
    line = node.lineno
    return Mutant(site.kind, line, bad, f"Line {line}: {text}")


def run_tests(code: str, test: str, entry_point: str, timeout: float) -> bool:
    """Whether `code` passes the HumanEval test program (False on error or timeout)."""
    program = f"{code}\n\n{test}\n\ncheck({entry_point})\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "program.py")
        with open(path, "w") as f:
            f.write(program)
        try:
            done = subprocess.run([sys.executable, "-I", path], cwd=tmp, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def mutants_for(
    problem: dict,
    *,
    seed: int,
    n: int,
    validate: bool = True,
    timeout: float = 5.0,
    max_tries: int | None = None,
) -> list[CritiqueRecord]:
    """Up to `n` buggy versions of one HumanEval problem, of different kinds when possible.

    Candidate sites are shuffled by (seed, task id) and visited kind by kind in turn; each
    site's random choices use their own seeded generator, so the result does not depend
    on which earlier candidates were rejected.
    """
    task_id, entry = problem["task_id"], problem["entry_point"]
    code = clean_source(problem["prompt"] + problem["canonical_solution"])
    rng = random.Random(f"{seed}/{task_id}")
    by_kind: dict[str, list[Site]] = {}
    for site in find_sites(code, entry):
        by_kind.setdefault(site.kind, []).append(site)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    for sites in by_kind.values():
        rng.shuffle(sites)
    order = [by_kind[k][i] for i in range(max(map(len, by_kind.values()), default=0))
             for k in kinds if i < len(by_kind[k])]
    out: list[CritiqueRecord] = []
    seen = {code}
    tries = 0
    for site in order:
        if len(out) == n or (max_tries is not None and tries >= max_tries):
            break
        m = apply_site(code, entry, site, random.Random(f"{seed}/{task_id}/{site.kind}/{site.index}"))
        if m is None or m.code in seen:
            continue
        tries += 1
        if validate and run_tests(m.code, problem["test"], entry, timeout):
            continue  # an equivalent program: the tests can't tell, so it is no bug
        seen.add(m.code)
        out.append(CritiqueRecord(
            id=f"{task_id}#{len(out)}", task_id=task_id, problem=problem["prompt"].strip(), code=m.code,
            critique=m.explanation, kind=m.kind, line=m.line, original=code,
        ))
    return out


def generate_critiques(
    problems: Sequence[dict],
    *,
    seed: int = 0,
    per_problem: int = 3,
    validate: bool = True,
    timeout: float = 5.0,
    limit: int | None = None,
    workers: int | None = None,
) -> list[CritiqueRecord]:
    """Critique records for HumanEval-style problems (dicts with task_id, prompt,
    canonical_solution, test, entry_point), in the given problem order.

    `limit` stops once that many records are made (problems are processed in chunks of
    `workers` in parallel, and the output is cut to `limit`, so it is deterministic).
    """
    workers = workers or min(8, os.cpu_count() or 1)
    max_tries = 4 * per_problem  # bound the test runs on problems where most mutants are equivalent
    out: list[CritiqueRecord] = []

    def one(p: dict) -> list[CritiqueRecord]:
        return mutants_for(p, seed=seed, n=per_problem, validate=validate, timeout=timeout,
                           max_tries=max_tries)

    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(problems), workers):
            for records in pool.map(one, problems[start : start + workers]):
                out.extend(records)
            if limit is not None and len(out) >= limit:
                return out[:limit]
    return out
