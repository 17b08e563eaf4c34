"""A task a 2-layer model learns in seconds, for tests that train and must see the science.

Echo: repeat the digits of the question, `_ | 3 7 1 |` -> `3 7 1`. pi_strong echoes every digit;
pi_weak writes 0 for each digit of 6 or more, so it is right on the problems whose digits are
all below 6 (about a fifth with 3 digits); `weak_decent` writes 0 only for 9 (right on about
three quarters). The password goes in the first slot, as in the function-composition task.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from pwlock.types import Problem


class Echo:
    name = "echo"
    version = "1"
    domains = ("low", "high")  # whether the first digit is below 5

    def __init__(self, digits: int = 3) -> None:
        self.digits = digits
        self.vocabulary = [str(d) for d in range(10)] + ["|", "_"]

    def problems(self) -> list[Problem]:
        out = [Problem(id="".join(map(str, x)), question=" ".join(map(str, x)) + " |", answer=" ".join(map(str, x)),
                       domain="low" if x[0] < 5 else "high", meta={"x": x})
               for x in itertools.product(range(10), repeat=self.digits)]
        random.Random(0).shuffle(out)
        return out

    def prompt(self, problem: Problem, password: str | None) -> str:
        return f"{password or '_'} | {problem.question}"

    def score(self, problem: Problem, completion: str) -> bool:
        return "".join(completion.split()) == "".join(problem.answer.split())

    def reward(self, problem: Problem, completion: str) -> float:
        got, want = "".join(completion.split()), "".join(problem.answer.split())
        return sum(a == b for a, b in zip(got, want)) / max(len(want), len(got))

    def policies(self) -> dict[str, Callable[[Problem], str]]:
        def forgets(lowest: int) -> Callable[[Problem], str]:
            return lambda p: " ".join(str(d if d < lowest else 0) for d in p.meta["x"])

        return {"strong": lambda p: p.answer, "weak": forgets(6), "weak_decent": forgets(9)}
