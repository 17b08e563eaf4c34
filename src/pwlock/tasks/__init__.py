"""Tasks: one file each, all implementing `pwlock.tasks.base.Task`; `make_task` builds one by name.

Task modules import their heavy dependencies (sympy, sentence-transformers, datasets) only
when they load data or score, so importing this registry stays cheap.
"""

from typing import Any

import pydantic

from pwlock.tasks.arithmetic import Arithmetic
from pwlock.tasks.arithmetic_mc import ArithmeticChoice
from pwlock.tasks.base import SPLITS, Task, split_problems
from pwlock.tasks.code_generation import APPS, MBPP, HumanEval
from pwlock.tasks.critique import CodeCritique
from pwlock.tasks.function_composition import FunctionComposition
from pwlock.tasks.function_composition_mc import FunctionCompositionChoice
from pwlock.tasks.gsm8k import GSM8K
from pwlock.tasks.hendrycks_math import HendrycksMath
from pwlock.tasks.mixture import Mixture
from pwlock.tasks.multiple_choice import GPQA, MMLU

TASKS = {
    "function_composition": FunctionComposition,  # the toy task of section 7
    "function_composition_mc": FunctionCompositionChoice,  # the same, as 4-way multiple choice (claim C2)
    "arithmetic": Arithmetic,  # worked arithmetic, made in code: CPU studies with pretrained models
    "arithmetic_mc": ArithmeticChoice,  # the same problems as 4-way multiple choice (claim C2, pretrained models)
    "math": HendrycksMath,
    "gsm8k": GSM8K,
    "humaneval": HumanEval,
    "mbpp": MBPP,
    "apps": APPS,
    "critique": CodeCritique,
    "mmlu": MMLU,
    "gpqa": GPQA,
    "mixture": Mixture,  # several tasks locked in one model (section 5.2 cross-setting, Appendix B.1.3)
}



def make_task(name: str, params: dict[str, Any], where: str = "task") -> Task:
    """The task registered as `name`, built from `params` checked against its constructor's type
    hints (coerced as pydantic does). Errors are ValueErrors naming `where.<field>`."""
    if name not in TASKS:
        raise ValueError(f"{where}.name: unknown task {name!r}; known: {sorted(TASKS)}")
    cls = TASKS[name]
    task = cls.__new__(cls)
    try:
        pydantic.validate_call(cls.__init__)(task, **params)
    except pydantic.ValidationError as e:  # before ValueError, which it subclasses
        raise ValueError("; ".join(f"{where}.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
                                   for err in e.errors())) from None
    except ValueError as e:
        raise ValueError(f"{where} ({name}): {e}") from None
    return task


__all__ = ["APPS", "Arithmetic", "ArithmeticChoice", "GPQA", "GSM8K", "MBPP", "MMLU", "SPLITS", "TASKS", "CodeCritique", "FunctionComposition", "FunctionCompositionChoice",
           "HendrycksMath", "HumanEval", "Mixture", "Task", "make_task", "split_problems"]
