"""Several tasks locked in one model, as one task.

Two uses in the paper: cross-setting generalization (section 5.2: "a single model locked
simultaneously on both code generation and MATH", Figure 4), and a setting variation used
as the password (Appendix B.1.3: strong on MATH in English, weak on MATH in Spanish with
ASCII-math; here e.g. function composition written in digits and in letters).

A config names the sub-tasks with their own fields:

    task:
      name: mixture
      tasks:
        - {name: function_composition, label: digits, n_problems: 2000}
        - {name: function_composition, label: letters, alphabet: letters, problem_seed: 7}

Each sub-task's problems keep their question and answer; ids become "label/id" and the
domain becomes the label (the sub-task's own domain is in meta["subdomain"]), so
per-domain locking and elicitation (section 5.2) work across sub-tasks. Prompts, scoring,
rewards and policies go to the sub-task, with its original problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, NamedTuple

from pwlock.tasks.base import SPLIT_GROUP, Task, reward_all, score_all
from pwlock.types import Problem


class Source(NamedTuple):
    """Where a mixture problem comes from."""

    label: str
    """The sub-task's label (the mixture problem's domain)."""
    problem: Problem
    """The sub-task's own problem, the one its prompt, scorer and policies expect."""


def build_subtask(i: int, entry: dict[str, Any]) -> tuple[str, Task]:
    """The label and task of `tasks[i]`, its fields checked against the constructor's type hints
    (as the runner does for a top-level task), errors naming the entry."""
    from pwlock.tasks import make_task  # here, not at the top: pwlock.tasks imports this module

    params = dict(entry)
    name = params.pop("name", None)
    label = params.pop("label", name)
    task = make_task(name, params, where=f"tasks[{i}]")
    if not isinstance(label, str) or not label or "/" in label:
        # "/" separates the label from the sub-task's id in mixture ids
        raise ValueError(f"tasks[{i}].label: a non-empty string without '/', got {label!r}")
    return label, task


class Mixture:
    """Several registered tasks as one: problems of all, each dispatched to its own task."""

    name = "mixture"

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        if len(tasks) < 2:
            raise ValueError(f"tasks: a mixture needs at least 2 tasks, got {len(tasks)}")
        self.tasks: dict[str, Task] = {}
        for i, entry in enumerate(tasks):
            label, task = build_subtask(i, entry)
            if label in self.tasks:
                raise ValueError(f"tasks[{i}].label: {label!r} is already used; give each task its own label")
            self.tasks[label] = task
        self.domains = tuple(self.tasks)
        # Changes whenever a sub-task's version does (cache keys include it); "1" is the
        # mixture's own format (ids, domains, dispatch).
        self.version = "1:" + "+".join(f"{t.name}-{t.version}" for t in self.tasks.values())

    @property
    def data_source(self) -> str:
        return "; ".join(f"{label}: {getattr(t, 'data_source', t.name)}" for label, t in self.tasks.items())

    @property
    def vocabulary(self) -> list[str]:
        """The sub-tasks' vocabularies, merged in order (for from-scratch word-level models)."""
        missing = [label for label, t in self.tasks.items() if not hasattr(t, "vocabulary")]
        if missing:
            raise ValueError(f"mixture: sub-tasks {missing} have no vocabulary, so a from-scratch model "
                             "cannot be used; use a pretrained model (model.name)")
        return list(dict.fromkeys(w for t in self.tasks.values() for w in t.vocabulary))

    @cached_property
    def _sources(self) -> dict[str, Source]:
        sources: dict[str, Source] = {}
        for label, task in self.tasks.items():
            for p in task.problems():
                id_ = f"{label}/{p.id}"  # unique across sub-tasks: labels are, and have no "/"
                if id_ in sources:
                    raise ValueError(f"duplicate problem id {id_!r} in mixture {list(self.tasks)}")
                sources[id_] = Source(label, p)
        return sources

    @cached_property
    def _problems(self) -> list[Problem]:
        return [
            Problem(id=id_, question=p.question, answer=p.answer, domain=label,
                    meta={"task": label, "subdomain": p.domain,
                          # a sub-task's groups (e.g. one program's critiques) stay in one split here too
                          **({SPLIT_GROUP: f"{label}/{p.meta[SPLIT_GROUP]}"} if SPLIT_GROUP in p.meta else {})})
            for id_, (label, p) in self._sources.items()
        ]

    def problems(self) -> list[Problem]:
        return list(self._problems)

    def source(self, problem: Problem) -> Source:
        """The sub-task label of a mixture problem and the sub-task's original problem."""
        try:
            return self._sources[problem.id]
        except KeyError:
            raise KeyError(f"problem {problem.id!r} is not a problem of this mixture") from None

    def problem_choices(self, problem: Problem) -> tuple[str, ...] | None:
        """The letters of a multiple-choice sub-task's problem, None for a generated one
        (`pwlock.evaluate` answers each problem as its sub-task would alone)."""
        choices = getattr(self.tasks[self.source(problem).label], "choices", None)
        return tuple(choices) if choices else None

    def prompt(self, problem: Problem, password: str | None) -> str:
        label, original = self.source(problem)
        return self.tasks[label].prompt(original, password)

    def score(self, problem: Problem, completion: str) -> bool:
        label, original = self.source(problem)
        return self.tasks[label].score(original, completion)

    def reward(self, problem: Problem, completion: str) -> float:
        label, original = self.source(problem)
        return self.tasks[label].reward(original, completion)

    def _by_task(self, fn: Callable[[Task, Sequence[Problem], Sequence[str]], list], problems: Sequence[Problem],
                 completions: Sequence[str]) -> list:
        """`fn` (score_all or reward_all) once per sub-task, over its problems (so a sub-task's own
        parallel `score_batch` still sees them all at once), results put back in input order."""
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        sources = [self.source(p) for p in problems]
        groups: dict[str, list[int]] = {}
        for i, (label, _) in enumerate(sources):
            groups.setdefault(label, []).append(i)
        out: list = [None] * len(problems)
        for label, rows in groups.items():
            results = fn(self.tasks[label], [sources[i].problem for i in rows], [completions[i] for i in rows])
            for i, r in zip(rows, results, strict=True):
                out[i] = r
        return out

    def score_batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[bool]:
        return self._by_task(score_all, problems, completions)

    def reward_batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[float]:
        return self._by_task(reward_all, problems, completions)

    def policies(self) -> dict[str, Callable[[Problem], str]]:
        """The policies every sub-task offers (strong always; weak when all sub-tasks have one, as
        function composition and arithmetic do), each following, problem by problem, the
        sub-task's policy of that name."""
        own = {label: t.policies() for label, t in self.tasks.items()}
        first = next(iter(own.values()))
        names = [n for n in first if all(n in pol for pol in own.values())]

        def dispatch(name: str) -> Callable[[Problem], str]:
            def policy(problem: Problem) -> str:
                label, original = self.source(problem)
                return own[label][name](original)
            return policy

        return {name: dispatch(name) for name in names}
