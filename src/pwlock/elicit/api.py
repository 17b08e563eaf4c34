"""How any elicitation method plugs into pwlock's stress test, without editing pwlock.

A method is an `Elicitor`: an object with a `name`, the `settings` (threat models) it
supports, and a call that receives

- a private copy of the locked model and its tokenizer (change the weights at will),
- a `Context` (the task's name, generation settings, the organism's fine-tuning settings, the
  run's generator),
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
- `unsupervised`: only the unlabeled problems;
- `demos:K[:SOURCE]+reward:S`: both K demonstrations and a reward scoring at most S completions
  (e.g. SFT then RL).
Every budget carries the elicitation split's prompts (without password). A method that asks
for more than its budget gets `BudgetExceeded`, naming it.

Methods are named on the command line by a registered name (`pwlock stress-test --list`), by
`module:attribute` or `path/to/file.py:attribute` (a class is instantiated without arguments),
or registered by an installed package through the entry-point group `pwlock.elicitors`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.errors import BudgetExceeded, MethodError
from pwlock.generate import Generator, generate
from pwlock.plugins import Registry, check_plugin
from pwlock.types import Example
from pwlock.types import Training as Training  # part of a method's Context: importable from here

SETTINGS = ("demos", "reward", "prompt_only", "unsupervised", "demos+reward")
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
    training: Training = field(default_factory=Training)
    """The organism's fine-tuning settings (learning rate, batch size, epochs): start from these."""
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


@dataclass
class DemosAndReward(Demos, Reward):
    """`demos:K[:SOURCE]+reward:S`: K demonstrations and `reward(prompts, completions)` capped at S
    samples, both enforced as in `Demos` and `Reward`. It is both, so code written for either reads the
    same attributes (`examples`, `reward`, `samples`, `left()`)."""

    setting: ClassVar[str] = "demos+reward"

    def spent(self) -> dict[str, int]:
        return {**Demos.spent(self), **Reward.spent(self)}


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


def check_elicitor(obj: Any, spec: str) -> None:
    """A clear error unless `obj` implements the protocol."""
    check_plugin("method", obj, spec, SETTINGS, "(model, tokenizer, context, budget, seed)")


_REGISTRY: Registry[Elicitor] = Registry("method", ENTRY_POINT_GROUP, "pwlock.elicit.builtins", check_elicitor)


def register(elicitor: Elicitor) -> Elicitor:
    """Add a method under its name (built-ins register themselves on import of `pwlock.elicit.builtins`)."""
    return _REGISTRY.register(elicitor)


def registered() -> dict[str, Elicitor]:
    """Every method by name: the built-ins, then those of installed packages' entry points."""
    return _REGISTRY.registered()


def resolve(spec: str) -> Elicitor:
    """The method a user names: a registered name, or `module:attribute` (a class is instantiated)."""
    return _REGISTRY.resolve(spec)


# -- what the harness checks -------------------------------------------------------------------


def weights_hash(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer (for `prompt_only`: the weights may not change)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        # flatten: a 0-dim tensor wider than a byte (BatchNorm's step count) cannot be viewed as bytes
        h.update(t.detach().to("cpu").contiguous().flatten().view(torch.uint8).numpy().tobytes())
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
