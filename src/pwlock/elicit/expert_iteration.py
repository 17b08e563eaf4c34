"""Expert iteration and filtering (section 6.1): elicitation with a reward but no demos.

Expert iteration, from the locked model M0: each round, sample one completion (no password,
temperature 1) for 10n problems of the elicitation split with the current model, keep the
best n by reward (random tie-break) and fine-tune on them to get the next model.

Filtering is the same loop with the candidates drawn from pi_weak instead of the current
model: the locked model is fine-tuned on filtered pi_weak samples for as many rounds.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import Budget, Context, Elicited, Reward
from pwlock.errors import MethodError
from pwlock.evaluate import Evaluation
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example

Candidates = Callable[[Sequence[Any], int], list[str]]
"""(problems, round) -> one completion per problem."""
Rewards = Callable[[Sequence[Any], Sequence[str]], list[float]]
"""(problems, completions) -> one reward per completion."""
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
    prompt: Callable[[Any], str],
    pool: Sequence[Any],
    *,
    rounds: int,
    n: int,
    candidates: Candidates,
    rewards: Rewards,
    args: TrainArgs,
    evaluate: Callable[[], Evaluation] | None,
    eval_every: int,
    seed: int,
) -> Trace:
    """Run `rounds` rounds on `model` in place; evaluate every `eval_every` rounds and at the end
    (`evaluate` None: no evaluation, an empty trace). `pool` holds problems, `prompt(problem)` gives
    each one's prompt without password."""
    if 10 * n > len(pool):
        raise ValueError(f"expert iteration needs 10n={10 * n} problems, the elicitation split has {len(pool)}")
    rng = random.Random(seed)
    trace = [] if evaluate is None else [(0, evaluate())]
    for r in range(rounds):
        problems = rng.sample(list(pool), 10 * n)
        completions = candidates(problems, r)
        keep = best_n(rewards(problems, completions), n, rng)
        demos = [Example(prompt(problems[i]), completions[i]) for i in keep]
        sft(model, tokenizer, lambda _, demos=demos: demos, replace(args, seed=seed * 100_003 + r),
            desc=f"round {r + 1}")
        if evaluate is not None and ((r + 1) % eval_every == 0 or r + 1 == rounds):
            trace.append(((r + 1) * 10 * n, evaluate()))
    return trace


class ExpertIteration:
    """Expert iteration, fine-tuning on the best n of 10n own samples each round (`reward:S`): as many rounds of 10n samples as S allows,
    with the RL config's n = 64 and temperature 1, one epoch a round at the organism's fine-tuning settings
    (`Context.training`: Appendix G.3 trains expert iteration as SFT elicitation). An elicitation split of
    fewer than 640 problems gets the largest n it holds 10n of (SmolLM2's 300: n = 30), said on stderr."""

    name = "expert_iteration"
    settings = ("reward",)
    n, temperature = 64, 1.0

    def plan(self, budget: Reward) -> tuple[int, int]:
        """(n, rounds) for the budget: a MethodError, before any training, where not one round fits."""
        n = min(self.n, len(budget.prompts) // 10)
        if n < 1:
            raise MethodError(f"{self.name}: a round samples 10n problems of the elicitation split, which has "
                              f"{len(budget.prompts)}: fewer than 10")
        rounds = budget.samples // (10 * n)
        if rounds < 1:
            raise MethodError(f"{self.name}: a round takes 10n={10 * n} samples; the budget has {budget.samples}")
        return n, rounds

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited:
        assert isinstance(budget, Reward)
        n, rounds = self.plan(budget)
        if n < self.n:  # said here, not in plan: sft_then_rl checks the plan before its SFT stage too
            print(f"[pwlock] {self.name}: n = {n} (10n of the elicitation split's {len(budget.prompts)} problems; "
                  f"{self.n} asked), {rounds} rounds", file=sys.stderr, flush=True)
        rng = random.Random(f"candidates-{seed}")

        def candidates(prompts: Sequence[str], r: int) -> list[str]:
            return context.generate(model, tokenizer, prompts, temperature=self.temperature,
                                    seed=rng.randrange(2**31), max_new_tokens=context.max_new_tokens,
                                    batch_size=context.batch_size, desc=f"sample {r + 1}")

        args = context.training.args(1, n, seed)
        expert_iteration(model, tokenizer, str, budget.prompts, rounds=rounds, n=n, candidates=candidates,
                         rewards=budget.reward, args=args, evaluate=None, eval_every=rounds, seed=seed)
        return Elicited(model)
