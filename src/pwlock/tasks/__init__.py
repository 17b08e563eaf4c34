"""Tasks: one file each, all implementing `pwlock.tasks.base.Task`.

Task modules import their heavy dependencies (sympy, sentence-transformers, datasets) only
when they load data or score, so importing this registry stays cheap.
"""

from pwlock.tasks.arithmetic import Arithmetic
from pwlock.tasks.base import SPLITS, Task, split_problems
from pwlock.tasks.code_generation import APPS, MBPP, HumanEval
from pwlock.tasks.critique import CodeCritique
from pwlock.tasks.function_composition import FunctionComposition
from pwlock.tasks.gsm8k import GSM8K
from pwlock.tasks.hendrycks_math import HendrycksMath
from pwlock.tasks.mixture import Mixture
from pwlock.tasks.multiple_choice import GPQA, MMLU

TASKS = {
    "function_composition": FunctionComposition,  # the toy task of section 7
    "arithmetic": Arithmetic,  # worked arithmetic, made in code: CPU studies with pretrained models
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

__all__ = ["APPS", "Arithmetic", "GPQA", "GSM8K", "MBPP", "MMLU", "SPLITS", "TASKS", "CodeCritique", "FunctionComposition",
           "HendrycksMath", "HumanEval", "Mixture", "Task", "split_problems"]
