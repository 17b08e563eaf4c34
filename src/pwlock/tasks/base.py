"""The Task protocol and the deterministic 10/40/30/20 split of the paper (section 4.2)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from pwlock.types import Problem

SPLITS = ("weak", "lock", "elicit", "val")
"""pi_weak training / locking / elicitation / validation, in the paper's order."""
SPLIT_FRACTIONS = {"weak": 0.1, "lock": 0.4, "elicit": 0.3, "val": 0.2}


@runtime_checkable
class Task(Protocol):
    """What every task provides. A new task is one file implementing this."""

    name: str
    version: str
    """Changes whenever the prompt format, data or scorer change (cache keys include it)."""
    domains: tuple[str, ...]

    def problems(self) -> list[Problem]:
        """All problems of the task, in a fixed order."""
        ...

    def prompt(self, problem: Problem, password: str | None) -> str:
        """The prompt text; the task decides where the password goes."""
        ...

    def score(self, problem: Problem, completion: str) -> bool:
        """Whether a completion is correct."""
        ...

    def reward(self, problem: Problem, completion: str) -> float:
        """A continuous reward in [0, 1]; tasks without one return float(score)."""
        ...

    def policies(self) -> dict[str, Callable[[Problem], str]]:
        """Rule-based policies the task defines (e.g. 'strong', 'weak'), problem -> completion."""
        ...


def password_around(question: str, password: str | None) -> str:
    """The paper's placement for real tasks: the password before and after the question, a blank
    line on each side; the bare question when there is none (an empty password is still one)."""
    return question if password is None else f"{password}\n\n{question}\n\n{password}"


def problem_choices(task: Task, problem: Problem) -> tuple[str, ...] | None:
    """The letters `problem` is classified over (a multiple-choice task's `choices`), or None when it
    is answered by generation. A mixture answers each problem as its sub-task does."""
    per_problem = getattr(task, "problem_choices", None)
    choices = per_problem(problem) if per_problem is not None else getattr(task, "choices", None)
    return tuple(choices) if choices else None


def check_unique_ids(problems: list[Problem], source: str) -> list[Problem]:
    """`problems`, after checking that their ids are unique (splits, caches and completion
    files are keyed by id)."""
    seen: set[str] = set()
    for p in problems:
        if p.id in seen:
            raise ValueError(f"duplicate problem id {p.id!r} in {source}")
        seen.add(p.id)
    return problems


def keep_subset(problems: list[Problem], max_problems: int | None, seed: int = 0) -> list[Problem]:
    """The first `max_problems` problems of a fixed shuffle, in their source order (all when
    None): a smaller task whose problems do not depend on how many are kept."""
    if max_problems is None or max_problems >= len(problems):
        return problems
    keep = list(range(len(problems)))
    random.Random(seed).shuffle(keep)
    return [problems[i] for i in sorted(keep[:max_problems])]


def score_all(task: Task, problems: Sequence[Problem], completions: Sequence[str]) -> list[bool]:
    """`task.score` over many completions; tasks whose scoring is costly (running code,
    embedding text) may define `score_batch(problems, completions)` to do it in parallel."""
    batch = getattr(task, "score_batch", None)
    if batch is not None:
        return list(batch(problems, completions))
    return [task.score(p, c) for p, c in zip(problems, completions)]


def reward_all(task: Task, problems: Sequence[Problem], completions: Sequence[str]) -> list[float]:
    """`task.reward` over many completions, through `reward_batch` where the task has one."""
    batch = getattr(task, "reward_batch", None)
    if batch is not None:
        return list(batch(problems, completions))
    return [task.reward(p, c) for p, c in zip(problems, completions)]


SPLIT_GROUP = "split_group"
"""A problem's `meta` key: problems with equal values are kept in one split (e.g. the buggy
variants of one program in the critique task, which would otherwise leak from the locking data
into the validation data). Problems without it are groups of one."""


def split_problems(problems: Sequence[Problem], seed: int) -> dict[str, list[Problem]]:
    """Shuffle with `seed` and cut into the four splits (10% / 40% / 30% / 20%).

    Sizes are floor(n * fraction) for the first three splits, the rest goes to validation,
    so the four splits always partition the problems.

    Grouped problems (`SPLIT_GROUP`) are shuffled as whole groups, in place of their first
    member, and each group goes where its first problem falls; the splits' sizes then
    differ from the fractions by less than one group. Without groups, the shuffle and the
    cuts are exactly those of ungrouped splitting (the same splits as before groups existed).
    """
    groups: dict[Any, list[Problem]] = {}
    for i, p in enumerate(problems):
        key = ("group", p.meta[SPLIT_GROUP]) if SPLIT_GROUP in p.meta else ("problem", i)
        groups.setdefault(key, []).append(p)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    n = len(problems)
    ends, end = [], 0
    for name in SPLITS:
        end = n if name == "val" else end + int(n * SPLIT_FRACTIONS[name])
        ends.append(end)
    out: dict[str, list[Problem]] = {name: [] for name in SPLITS}
    position = 0
    for group in order:
        split = next(i for i, e in enumerate(ends) if position < e)
        out[SPLITS[split]].extend(group)
        position += len(group)
    return out
