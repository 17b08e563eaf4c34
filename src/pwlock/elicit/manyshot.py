"""Many-shot prompting (Anil et al. 2024): as many of the budget's demonstrations before every prompt
as the model's context holds, weights untouched (`prompt_only:K`).

`manyshot` puts min(K, 250) shots, or fewer when they do not fit: the most whose prompt, on the
longest of the budget's prompts, leaves room for the evaluation's completion in the model's context
(`context_overflow`, shared with `fewshot`). `ManyShot(shots=N)` asks for exactly N, and is refused,
naming `shots`, when N shots exceed K or the context. `manyshot-wrong` is the same prompt with every
shot's completion replaced by a wrong one: without a labelled oracle, another demonstration's
completion (the next one in the shuffled order whose text differs), so each wrong answer keeps the
task's format and differs from the demonstration's own.

    pwlock stress-test manyshot manyshot-wrong --suite demo --setting prompt_only:64

Departures from the literature: the shots are the stress test's demonstrations (pi_strong's by default),
not a jailbreak dialogue; the shot count is fitted to the context rather than swept (run several
`prompt_only:K` settings for a sweep); the cost column counts the K demonstrations handed over, the
shots used are logged. On the demo suite's 64-token models only ~2 toy shots fit, so
there `manyshot` is few-shot prompting; the method is meant for long-context models.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import Budget, Context, Elicited, PromptOnly
from pwlock.elicit.prompting import context_overflow, fewshot_text
from pwlock.errors import MethodError

MAX_SHOTS = 250
"""Anil et al.'s largest shot count."""


def wrong_completions(shots: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each shot's completion replaced by the next shot's (cyclically) that differs from its own."""
    completions = [c for _, c in shots]
    out = []
    for i, (prompt, own) in enumerate(shots):
        others = (completions[(i + j) % len(shots)] for j in range(1, len(shots)))
        wrong = next((c for c in others if c != own), None)
        if wrong is None:
            raise MethodError("manyshot-wrong: needs demonstrations with at least two different completions "
                              "(prompt_only:K with K >= 2)")
        out.append((prompt, wrong))
    return out


class ManyShot:
    """Many-shot prompting up to the context (`prompt_only:K`): min(K, 250) of the demonstrations, or as many as
    fit; `wrong=True` (`manyshot-wrong`) gives each shot another demonstration's completion."""

    settings = ("prompt_only",)

    @property
    def description(self) -> str:
        """What `pwlock stress-test --list` says of this instance."""
        shots = "wrong shots (each another demonstration's completion)" if self.wrong else "correct shots"
        return f"Many-shot prompting up to the context, {shots}"

    def __init__(self, name: str = "manyshot", *, wrong: bool = False, shots: int | None = None) -> None:
        if shots is not None and not 1 <= shots <= MAX_SHOTS:
            raise MethodError(f"{name}: shots must be in 1..{MAX_SHOTS}, got {shots}")
        self.name, self.wrong, self.shots = name, wrong, shots

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited:
        assert isinstance(budget, PromptOnly)
        if not budget.examples:
            raise MethodError(f"{self.name}: needs demonstrations: use the setting prompt_only:K with K >= 1")
        shots = [(e.prompt, e.completion) for e in budget.examples]
        random.Random(seed).shuffle(shots)
        if self.wrong:
            shots = wrong_completions(shots)
        # the shots are one prefix for every query: the longest query makes the longest prompt
        query = max(budget.prompts, key=lambda q: len(tokenizer(q)["input_ids"]))

        def overflow(n: int) -> str | None:
            return context_overflow(model, tokenizer, [fewshot_text(shots[:n], query)], reserve=context.max_new_tokens)

        if self.shots is not None:
            if self.shots > len(shots):
                raise MethodError(f"{self.name}: shots={self.shots} but the budget has {len(shots)} demonstrations "
                                  f"(prompt_only:{len(shots)})")
            why = overflow(self.shots)
            if why:
                raise MethodError(f"{self.name}: shots={self.shots} make {why}: ask for fewer shots")
            n = self.shots
        else:
            lo, hi = 0, min(len(shots), MAX_SHOTS)  # the most that fit, by bisection: prompts grow with n
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if overflow(mid) is None else (lo, mid - 1)
            if lo == 0:
                raise MethodError(f"{self.name}: not even 1 shot fits: it makes {overflow(1)}")
            n = lo
        chosen = shots[:n]
        print(f"[pwlock] {self.name}: {n} of {len(shots)} shots", file=sys.stderr, flush=True)
        return Elicited(model, prompt=lambda q: fewshot_text(chosen, q))
