"""Greedy correctness of a model on a list of problems, with or without a password.

Generation tasks are scored on greedy completions; multiple-choice tasks (those with a
`choices` attribute, e.g. MMLU) on the letter with the highest next-token logit, as the
paper evaluates MMLU (no generation). A mixture may hold both kinds (`problem_choices`): each
problem is answered the way its own task is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.classify import classify
from pwlock.generate import Generator, generate
from pwlock.tasks.base import Task, problem_choices, score_all
from pwlock.types import Problem


@dataclass(frozen=True)
class Evaluation:
    """Outcome of evaluating one model under one prompt condition."""

    correctness: float
    """Fraction of problems whose greedy completion the task scores correct."""
    n: int
    """Number of problems evaluated."""
    completions: list[str]
    """The completions, in problem order (kept for inspection and caching)."""
    scores: list[bool]
    """Whether each completion is correct, in problem order (per-domain correctness reads these)."""


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    problems: Sequence[Problem],
    *,
    password: str | None,
    max_new_tokens: int,
    batch_size: int = 256,
    generator: Generator = generate,
    prompts: Sequence[str] | None = None,
) -> Evaluation:
    """`prompts`, when given, replace the task's prompts with `password` (one per problem: a
    password per domain, few-shot demonstrations, a jailbreak)."""
    if prompts is None:
        prompts = [task.prompt(p, password) for p in problems]
    elif len(prompts) != len(problems):
        raise ValueError(f"{len(prompts)} prompts for {len(problems)} problems")
    groups: dict[tuple[str, ...] | None, list[int]] = {}  # rows by how they are answered (None: generated)
    for i, p in enumerate(problems):
        groups.setdefault(problem_choices(task, p), []).append(i)
    completions = [""] * len(problems)
    for choices, rows in groups.items():
        asked = [prompts[i] for i in rows]
        if choices:
            answers = classify(model, tokenizer, asked, choices, batch_size=batch_size)
        else:
            answers = generator(model, tokenizer, asked, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                desc="eval w/ pwd" if password else "eval w/o pwd")
        for i, answer in zip(rows, answers, strict=True):
            completions[i] = answer
    scores = score_all(task, problems, completions)
    return Evaluation(sum(scores) / len(problems), len(problems), completions, scores)
