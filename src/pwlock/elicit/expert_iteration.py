"""Expert iteration and filtering (section 6.1): elicitation with a reward but no demos.

Expert iteration, from the locked model M0: each round, sample one completion (no password,
temperature 1) for 10n problems of the elicitation split with the current model, keep the
best n by reward (random tie-break) and fine-tune on them to get the next model.

Filtering is the same loop with the candidates drawn from pi_weak instead of the current
model: the locked model is fine-tuned on filtered pi_weak samples for as many rounds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.evaluate import Evaluation
from pwlock.tasks.base import Task
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example, Problem

Candidates = Callable[[Sequence[Problem], int], list[str]]
"""(problems, round) -> one completion per problem."""
Rewards = Callable[[Sequence[Problem], Sequence[str]], list[float]]
Trace = list[tuple[int, Evaluation]]
"""(completions generated so far, evaluation without password), from 0 generated on."""


def best_n(rewards: Sequence[float], n: int, rng: random.Random) -> list[int]:
    """Indices of the n highest rewards; equal rewards are ordered at random."""
    order = list(range(len(rewards)))
    rng.shuffle(order)
    order.sort(key=lambda i: -rewards[i])  # a stable sort keeps the shuffled order among ties
    return order[:n]


def expert_iteration(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    pool: Sequence[Problem],
    *,
    rounds: int,
    n: int,
    candidates: Candidates,
    rewards: Rewards,
    args: TrainArgs,
    evaluate: Callable[[], Evaluation],
    eval_every: int,
    seed: int,
) -> Trace:
    """Run `rounds` rounds on `model` in place; evaluate every `eval_every` rounds and at the end."""
    if 10 * n > len(pool):
        raise ValueError(f"expert iteration needs 10n={10 * n} problems, the elicitation split has {len(pool)}")
    rng = random.Random(seed)
    trace = [(0, evaluate())]
    for r in range(rounds):
        problems = rng.sample(list(pool), 10 * n)
        completions = candidates(problems, r)
        keep = best_n(rewards(problems, completions), n, rng)
        demos = [Example(task.prompt(problems[i], None), completions[i]) for i in keep]
        sft(model, tokenizer, lambda _, demos=demos: demos, replace(args, seed=seed * 100_003 + r),
            desc=f"round {r + 1}")
        if (r + 1) % eval_every == 0 or r + 1 == rounds:
            trace.append(((r + 1) * 10 * n, evaluate()))
    return trace
