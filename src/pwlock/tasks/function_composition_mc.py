"""Function composition as 4-way multiple choice: the classification twin of the toy task (claim C2).

The paper found that unlocking MMLU, a classification task, takes hundreds of demonstrations where
generation tasks take a few (section 5.1). MMLU is not available offline, so this variant asks the
same question as `FunctionComposition` (same functions, problems and splits) but offers four final
results and takes one letter, scored like MMLU by the letter with the highest next-token logit
(`pwlock.classify`):

    prompt:      _ | fn3 fn5 | 1 6 1 8 | A 0 0 7 9 B 1 6 1 8 C 0 9 0 7 D 6 1 8 1 |
    completion:  B

The options are the four results an identity-weak policy can give: both functions applied (the
answer), only the first, only the second, neither (the input). Where two of these coincide (a
function fixes this input), seeded random 4-digit strings fill the gap. Their order is shuffled per
problem, seeded by the problem's id, so no letter is favoured.

pi_strong picks the answer; pi_weak picks the option its identity set computes (the same weak policy
as the generation task, so both variants have the same strong and weak accuracy: 1 and about 1/4).
A completion scores when it is exactly the answer's letter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cached_property

from pwlock.tasks.function_composition import GRADED_WEAK, N_DIGITS, FunctionComposition
from pwlock.tasks.multiple_choice import LETTERS, LetterChoice
from pwlock.types import Problem


class FunctionCompositionChoice(LetterChoice, FunctionComposition):
    """Function composition as 4-way multiple choice (scored by letter logits, like MMLU)."""

    name = "function_composition_mc"
    version = "1"

    @property
    def vocabulary(self) -> list[str]:
        return super().vocabulary + list(LETTERS)

    def final(self, problem: Problem, identity: frozenset[int]) -> str:
        """The last result of the chain when the functions in `identity` are replaced by the identity."""
        return self._chain(problem.meta["functions"], problem.meta["input"], identity).split("|")[-1].strip()

    def options(self, problem: Problem) -> list[str]:
        """The four final results offered (distinct), in their shuffled order."""
        fns = problem.meta["functions"]
        rng = random.Random(f"{self.seed}:{problem.id}")
        options: list[str] = []
        # every subset of the composed functions dropped: the answer first, the input last
        for drop in sorted(range(2 ** len(fns)), key=lambda m: bin(m).count("1")):
            text = self.final(problem, frozenset(f for i, f in enumerate(fns) if drop >> i & 1))
            if text not in options and len(options) < len(LETTERS):
                options.append(text)
        while len(options) < len(LETTERS):
            text = self.write([tuple(rng.randrange(10) for _ in range(N_DIGITS))])
            if text not in options:
                options.append(text)
        rng.shuffle(options)
        return options

    @cached_property
    def _problems(self) -> list[Problem]:
        problems = []
        for p in FunctionComposition._problems.func(self):  # the generation task's problems, uncached
            options = self.options(p)
            spaced = [" ".join(o.replace(" ", "")) for o in options]  # the tokenizer splits digits anyway
            choices = " ".join(f"{letter} {o}" for letter, o in zip(LETTERS, spaced))
            answer = LETTERS[options.index(self.final(p, frozenset()))]
            problems.append(Problem(id=p.id, question=f"{p.question} {choices} |", answer=answer, domain=p.domain,
                                    meta={**p.meta, "options": options}))
        return problems

    def policies(self) -> dict[str, Callable[[Problem], str]]:
        """strong (the answer's letter), weak and the graded identity8/16/24: the letter of the result their
        identity set computes."""
        def pick(identity: frozenset[int]) -> Callable[[Problem], str]:
            return lambda p: LETTERS[p.meta["options"].index(self.final(p, identity))]

        graded = {f"identity{n}": pick(self.weak_identity(n)) for n in GRADED_WEAK}
        return {"strong": lambda p: p.answer, "weak": pick(self.weak_identity()), **graded}
