"""How any elicitation method plugs into pwlock's stress test, without editing pwlock.

A method is an `Elicitor`: an object with a `name`, the `settings` (threat models) it
supports, and a call that receives

- a private copy of the locked model and its tokenizer (change the weights at will),
- a `Context` (the task's name, generation settings, the run's generator),
- a `Budget`: exactly what its threat model allows, and nothing else,
- a seed,

and returns an `Elicited`: the model to evaluate, optionally a prompt transform (prompting
attacks) and an inference-time hook (steering). pwlock then evaluates it without the
password on the organism's validation problems. The password never reaches a method: no
argument, attribute or file handed to it holds it (a word-level toy tokenizer necessarily
has the password among its words, next to the lock's twenty wrong passwords).

Settings (`Budget` subclasses):
- `demos:K[:SOURCE]`: K demonstrations without password (default source: pi_strong), the
  paper's SFT setting (section 5);
- `reward:S`: a reward function scoring at most S completions (section 6);
- `prompt_only[:K]`: weights frozen (checked by a hash before and after), optionally K
  demonstrations for few-shot prompts;
- `unsupervised`: only the unlabeled problems.
Every budget carries the elicitation split's prompts (without password). A method that asks
for more than its budget gets `BudgetExceeded`, naming it.

Methods are named on the command line by a registered name (`pwlock stress-test --list`), by
`module:attribute` or `path/to/file.py:attribute` (a class is instantiated without arguments),
or registered by an installed package through the entry-point group `pwlock.elicitors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.errors import BudgetExceeded, MethodError
from pwlock.generate import Generator, generate
from pwlock.types import Example

SETTINGS = ("demos", "reward", "prompt_only", "unsupervised")
ENTRY_POINT_GROUP = "pwlock.elicitors"


# -- what a method receives ------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a method may know about the task besides its budget."""

    task: str
    """The task's name (e.g. function_composition)."""
    max_new_tokens: int
    """The evaluation's completion length: sample with the same."""
    batch_size: int
    """The evaluation's generation batch size."""
    generate: Generator = generate
    """The run's generator (`pwlock.generate.Generator`): Hugging Face, or vLLM on a GPU."""


@dataclass
class Budget:
    """What a threat model allows; `prompts` are the elicitation split's, without password."""

    setting: ClassVar[str]
    prompts: list[str]

    def spent(self) -> dict[str, int]:
        """What the method used, for the cost columns of the leaderboard."""
        return {}


@dataclass
class Demos(Budget):
    """`demos:K[:SOURCE]`: K demonstrations (prompt without password, completion by SOURCE)."""

    setting: ClassVar[str] = "demos"
    examples: list[Example] = field(default_factory=list)
    source: str = "strong"

    def spent(self) -> dict[str, int]:
        return {"demos": len(self.examples)}


@dataclass
class Reward(Budget):
    """`reward:S`: `reward(prompts, completions)` scores completions of the budget's prompts, at most
    `samples` completions in all; each call counts."""

    setting: ClassVar[str] = "reward"
    samples: int = 0
    score: Callable[[Sequence[str], Sequence[str]], list[float]] | None = field(default=None, repr=False)
    used: int = 0
    calls: int = 0

    def reward(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """One reward per (prompt, completion); the prompts must be the budget's."""
        if len(prompts) != len(completions):
            raise ValueError(f"reward: {len(prompts)} prompts for {len(completions)} completions")
        if self.used + len(completions) > self.samples:
            raise BudgetExceeded(f"reward budget of {self.samples} samples exceeded: {self.used} scored, "
                                 f"{len(completions)} more asked")
        assert self.score is not None
        self.used += len(completions)
        self.calls += 1
        return self.score(prompts, completions)

    def left(self) -> int:
        return self.samples - self.used

    def spent(self) -> dict[str, int]:
        return {"reward_samples": self.used, "reward_calls": self.calls}


@dataclass
class PromptOnly(Budget):
    """`prompt_only[:K]`: the weights stay as they are; K demonstrations for few-shot prompts."""

    setting: ClassVar[str] = "prompt_only"
    examples: list[Example] = field(default_factory=list)

    def spent(self) -> dict[str, int]:
        return {"demos": len(self.examples)}


@dataclass
class Unsupervised(Budget):
    """`unsupervised`: the unlabeled problems only."""

    setting: ClassVar[str] = "unsupervised"


# -- what a method returns ---------------------------------------------------------------------


@dataclass
class Elicited:
    """What pwlock evaluates: `model`, each evaluation prompt passed through `prompt` (when given), with
    `hook(model)` entered around the evaluation (when given; e.g. adding a steering vector)."""

    model: PreTrainedModel
    prompt: Callable[[str], str] | None = None
    hook: Callable[[PreTrainedModel], contextlib.AbstractContextManager[Any]] | None = None
    train_tokens: int | None = None
    """Tokens trained on, if the method counts them (the cost column)."""


@runtime_checkable
class Elicitor(Protocol):
    """An elicitation method: see the module docstring."""

    name: str
    settings: tuple[str, ...]

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited: ...


# -- the registry ------------------------------------------------------------------------------

_REGISTRY: dict[str, Elicitor] = {}


def register(elicitor: Elicitor) -> Elicitor:
    """Add a method under its name (built-ins register themselves on import of `pwlock.elicit`)."""
    check_elicitor(elicitor, repr(getattr(elicitor, "name", elicitor)))
    _REGISTRY[elicitor.name] = elicitor
    return elicitor


def registered() -> dict[str, Elicitor]:
    """Every method by name: the built-ins, then those of installed packages' entry points."""
    import pwlock.elicit.builtins  # noqa: F401  (registers the built-ins)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = as_elicitor(_load(ep.load, f"entry point {ep.name} ({ep.value})"), ep.name)
    return dict(_REGISTRY)


def resolve(spec: str) -> Elicitor:
    """The method a user names: a registered name, or `module:attribute` (a class is instantiated)."""
    if ":" not in spec:
        methods = registered()
        if spec not in methods:
            raise MethodError(f"method {spec!r}: not registered (known: {', '.join(sorted(methods))}); "
                              "name your own as module:attribute")
        return methods[spec]
    module, _, attr = spec.rpartition(":")

    def load() -> Any:
        obj: Any = import_file(module) if module.endswith(".py") else importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    return as_elicitor(_load(load, spec), spec)


def import_file(path: str) -> Any:
    """A module from a .py file (`path/to/method.py:Class`: no package or sys.path needed)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = f"pwlock_user_{file.stem}_{hashlib.blake2b(str(file).encode(), digest_size=4).hexdigest()}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _load(load: Callable[[], Any], what: str) -> Any:
    try:
        return load()
    except Exception as e:  # any import-time failure of user code is the user's to fix
        raise MethodError(f"method {what}: cannot be loaded: {type(e).__name__}: {e}") from None


def as_elicitor(obj: Any, spec: str) -> Elicitor:
    """`obj` as an Elicitor: itself, or an instance of it when it is a class."""
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as e:
            raise MethodError(f"method {spec}: {obj.__name__}() failed: {type(e).__name__}: {e}") from None
    check_elicitor(obj, spec)
    elicitor: Elicitor = obj
    return elicitor


def check_elicitor(obj: Any, spec: str) -> None:
    """A clear error unless `obj` implements the protocol."""
    name, settings = getattr(obj, "name", None), getattr(obj, "settings", None)
    if not isinstance(name, str) or not name:
        raise MethodError(f"method {spec}: needs a `name` (str) attribute")
    if not isinstance(settings, tuple | list) or not settings or not set(settings) <= set(SETTINGS):
        raise MethodError(f"method {spec}: `settings` must be a non-empty tuple of {SETTINGS}, got {settings!r}")
    if not callable(obj):
        raise MethodError(f"method {spec}: must be callable as (model, tokenizer, context, budget, seed)")


# -- what the harness checks -------------------------------------------------------------------


def weights_hash(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer (for `prompt_only`: the weights may not change)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def no_hook(model: PreTrainedModel) -> Iterator[None]:
    yield


def check_elicited(out: Any, spec: str) -> Elicited:
    """`out` as returned by method `spec`, or a MethodError saying what is wrong with it."""
    if not isinstance(out, Elicited):
        raise MethodError(f"method {spec}: returned {type(out).__name__}, not pwlock.elicit.api.Elicited")
    if not isinstance(out.model, torch.nn.Module):
        raise MethodError(f"method {spec}: Elicited.model is a {type(out.model).__name__}, not a torch model")
    for what in ("prompt", "hook"):
        if getattr(out, what) is not None and not callable(getattr(out, what)):
            raise MethodError(f"method {spec}: Elicited.{what} must be callable or None")
    return out
