"""How any password-lock (sandbagging) detector plugs into pwlock, without editing pwlock.

A detector is the `Elicitor`'s sibling: an object with a `name`, the `settings` it supports (the
same threat models and `Budget` classes as elicitation, `pwlock.elicit.api`), and a call

    detector(model, tokenizer, context, budget, seed) -> Detection

that receives a private copy of a model (a locked organism or one of its benign twins: the
detector is not told which), the task `Context`, what its setting allows (`unsupervised`: the
unlabeled prompts; `reward:S`: a reward function scoring at most S completions; `demos:K`: K
demonstrations; `prompt_only[:K]`: frozen weights) and a seed. It returns a `Detection`: a score,
higher = more suspicious of a hidden capability, and JSON-safe evidence. The password never
reaches a detector.

`pwlock detect` scores every organism (label 1) and its weak and strong twins (label 0) and reports
how well each detector's score separates them (AUROC, TPR at low FPR: `pwlock.report.detection`).

Detectors are named on the command line like methods (`pwlock.plugins`): a registered name
(`pwlock detect --list`), `module:attribute` or `path/to/file.py:attribute` (a class is instantiated
without arguments), or an installed package's entry point in the group `pwlock.detectors`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import SETTINGS, Budget, Context
from pwlock.errors import MethodError
from pwlock.plugins import Registry, check_plugin

ENTRY_POINT_GROUP = "pwlock.detectors"


@dataclass(frozen=True)
class Detection:
    """What a detector concludes about one model."""

    score: float
    """How suspicious the model is: higher = more likely to hide a capability. Finite."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """What the score rests on (JSON-safe: numbers, strings, lists, dicts), kept in results.jsonl."""


@runtime_checkable
class Detector(Protocol):
    """A detector: see the module docstring."""

    name: str
    settings: tuple[str, ...]

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Detection: ...


def check_detector(obj: Any, spec: str) -> None:
    """A clear error unless `obj` implements the protocol."""
    check_plugin("detector", obj, spec, SETTINGS, "(model, tokenizer, context, budget, seed) -> Detection")


_REGISTRY: Registry[Detector] = Registry("detector", ENTRY_POINT_GROUP, "pwlock.detect.builtins", check_detector)


def register(detector: Detector) -> Detector:
    """Add a detector under its name (built-ins register themselves on import of `pwlock.detect.builtins`)."""
    return _REGISTRY.register(detector)


def registered() -> dict[str, Detector]:
    """Every detector by name: the built-ins, then those of installed packages' entry points."""
    return _REGISTRY.registered()


def resolve(spec: str) -> Detector:
    """The detector a user names: a registered name, or `module:attribute` / `file.py:attribute`."""
    return _REGISTRY.resolve(spec)


def check_detection(out: Any, spec: str) -> Detection:
    """`out` as returned by detector `spec`, or a MethodError saying what is wrong with it. A
    non-finite score would poison every AUROC it enters, so it is the detector's failure."""
    if not isinstance(out, Detection):
        raise MethodError(f"detector {spec}: returned {type(out).__name__}, not pwlock.detect.api.Detection")
    if isinstance(out.score, bool) or not isinstance(out.score, numbers.Real) or not math.isfinite(out.score):
        raise MethodError(f"detector {spec}: score {out.score!r} is not a finite number")
    if not isinstance(out.evidence, dict):
        raise MethodError(f"detector {spec}: Detection.evidence is a {type(out.evidence).__name__}, not a dict")
    try:
        evidence = plain(out.evidence)
    except TypeError as e:
        raise MethodError(f"detector {spec}: Detection.evidence is not JSON-safe: {e}") from None
    return Detection(float(out.score), evidence)


def plain(value: Any) -> Any:
    """`value` as strict JSON data: numpy/torch scalars and arrays as Python numbers and lists (`tolist`),
    NaN/inf as None, keys as strings; TypeError on anything else (a model, a function)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / torch: a scalar gives a number, an array a list
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"{type(value).__name__} value {value!r:.60}")
