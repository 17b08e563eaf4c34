"""Tasks: one file each, all implementing `pwlock.tasks.base.Task`."""

from pwlock.tasks.base import SPLITS, Task, split_problems
from pwlock.tasks.function_composition import FunctionComposition

TASKS = {"function_composition": FunctionComposition}

__all__ = ["SPLITS", "TASKS", "FunctionComposition", "Task", "split_problems"]
