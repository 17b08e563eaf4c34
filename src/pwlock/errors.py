"""The errors a user can cause, one type each, all under `PwlockError`.

`pwlock` (the CLI) prints a `PwlockError` as one line, `pwlock: error: <message>`, and exits
with status 2; any other exception is a bug in pwlock and keeps its traceback, with a line
asking to report it. Every message names what to fix: the config field, the file (with its
line for JSONL and CSV), the cache unit or the process in the way.
"""

from __future__ import annotations


class PwlockError(Exception):
    """A failure caused by the input or the environment, not by a bug in pwlock."""


class ConfigError(PwlockError, ValueError):
    """A config that cannot be run; the message names the file and the field."""


class RunDirError(ConfigError):
    """The output folder cannot hold this run (foreign contents, another config, a corrupt marker)."""


class NotARunError(PwlockError, ValueError):
    """The folder is missing, is not a pwlock run dir, or its stored results cannot be read."""


class DataError(PwlockError, ValueError):
    """A data file (a task's local source, a stored table) is missing, malformed or lacks a field."""


class CacheError(PwlockError):
    """A cached unit fails its integrity check and may not be recomputed (`--no-recompute`)."""


class TrainingError(PwlockError):
    """Training diverged (a non-finite loss); the message names the run and the step."""


class BusyError(PwlockError):
    """Another process holds the run dir; the message names it."""


class DiskFullError(PwlockError):
    """A write failed for lack of space; the message names the path and the space needed."""


class MethodError(PwlockError):
    """An elicitation method that does not import, does not implement the protocol, raises, returns the
    wrong type or breaks its threat model; the message names the method (and the organism)."""


class BudgetExceeded(MethodError):
    """A method asked for more than its budget allows (reward samples, demonstrations)."""


class OrganismError(PwlockError, ValueError):
    """A missing or foreign organism directory, a card from a newer pwlock, an unknown suite."""
