"""SFT elicitation (section 5): fine-tune the locked model on k demonstrations with no
password anywhere, and evaluate without the password at several epoch counts.

Appendix G.3 picks the epoch count per k afterwards, by the best mean over seeds among
{256/k, 512/k, 1024/k} epochs when k < 256 and {1, 2, 4} otherwise. Those candidates
are nested, so one run trained for the largest count is evaluated at each of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import Budget, Context, Demos, Elicited, Training
from pwlock.evaluate import Evaluation, evaluate
from pwlock.generate import Generator, generate
from pwlock.tasks.base import Task
from pwlock.train.data import n_tokens
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example, Problem


def default_epochs(k: int) -> list[int]:
    """Appendix G.3's candidate epoch counts for k demonstrations."""
    if k < 256:
        return sorted({max(1, round(n / k)) for n in (256, 512, 1024)})
    return [1, 2, 4]


def epoch_candidates(k: int, named: Mapping[int, Sequence[int]] | None) -> list[int]:
    """The candidate epoch counts for k demonstrations: a config's `named[k]`; for a k it does not name,
    those of the nearest k it names on a log scale (the larger on a tie: fewer epochs), since a config
    tuned for 16 and 64 demonstrations says more about 48 than Appendix G.3 does; with no mapping,
    Appendix G.3's."""
    if not named:
        return default_epochs(k)
    nearest = min(named, key=lambda n: (abs(math.log(n / k)), -n))
    return list(named[nearest])


def pick_demos(
    task: Task,
    pool: Sequence[Problem],
    k: int,
    seed: int,
    complete: Callable[[list[Problem]], list[str]],
) -> list[Example]:
    """k demonstrations drawn (without replacement, seeded) from `pool`, prompts without password;
    `complete` gives the demonstrations' completions for the chosen problems."""
    if k > len(pool):
        raise ValueError(f"k={k} demonstrations requested but the elicitation split has {len(pool)}")
    chosen = random.Random(seed).sample(list(pool), k)
    return [Example(task.prompt(p, None), c) for p, c in zip(chosen, complete(chosen))]


def elicit_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    demos: Sequence[Example],
    eval_problems: Sequence[Problem],
    *,
    epochs: Sequence[int],
    args: TrainArgs,
    max_new_tokens: int,
    eval_batch_size: int,
    generator: Generator = generate,
) -> dict[int, Evaluation]:
    """Train on `demos` for `args.epochs` (= max(epochs)) epochs; evaluate without the
    password after each epoch count listed in `epochs`."""
    results: dict[int, Evaluation] = {}
    checkpoints = set(epochs)

    def on_epoch_end(epoch: int) -> None:
        if epoch in checkpoints:
            results[epoch] = evaluate(
                model, tokenizer, task, eval_problems, password=None,
                max_new_tokens=max_new_tokens, batch_size=eval_batch_size, generator=generator,
            )

    if args.epochs != max(epochs):
        raise ValueError(f"args.epochs={args.epochs} must equal the largest checkpoint {max(epochs)}")
    sft(model, tokenizer, lambda _: list(demos), args, on_epoch_end=on_epoch_end, desc=f"elicit k={len(demos)}")
    return results


class SFT:
    """SFT on the K demonstrations for a fixed epoch count (`demos:K`): the organism's fine-tuning settings
    (`Context.training`: its config's SFT-elicitation lr, batch and optimizer, as the paper's lock's), for
    the middle of its candidate epoch counts for K (`epoch_candidates`: Appendix G.3's when the config
    names none). The paper picks among the candidates by the best mean on the validation problems
    afterwards; a method under test may not see them, so one count is fixed in advance."""

    name = "sft"
    settings = ("demos",)

    @staticmethod
    def epochs(k: int, training: Training) -> int:
        candidates = sorted(epoch_candidates(k, training.epochs))
        return candidates[len(candidates) // 2]

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited:
        assert isinstance(budget, Demos)
        demos, epochs = budget.examples, self.epochs(len(budget.examples), context.training)
        args = context.training.args(epochs, len(demos), seed)
        sft(model, tokenizer, lambda _: demos, args, desc=f"sft k={len(demos)}")
        return Elicited(model, train_tokens=epochs * n_tokens(tokenizer, demos))
