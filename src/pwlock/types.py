"""Small core types shared by every stage of the data flow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pwlock.train.sft import TrainArgs


@dataclass(frozen=True)
class Problem:
    """One task instance, independent of any password or policy."""

    id: str
    """Stable identifier, unique within its task."""
    question: str
    """The prompt body without any password; the task's `prompt` adds those."""
    answer: str
    """Reference completion (ground truth), scored correct by the task."""
    domain: str
    """Coarse group used by generalization studies (e.g. MATH subject group)."""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Task-specific data the scorer or the rule-based policies need."""


@dataclass(frozen=True)
class Example:
    """A supervised pair: the prompt text and the completion to imitate."""

    prompt: str
    """Full prompt text, password included where there is one."""
    completion: str
    """Target text; the SFT loss is computed on these tokens (and EOS) only."""
    kl: bool = False
    """Train toward a fixed token distribution at the completion's positions instead of its
    tokens (the `fixedrdm` lock of Appendix G.2); the completion then only gives context."""


@dataclass(frozen=True)
class Training:
    """How the organism is fine-tuned: the SFT-elicitation settings of the config it was built from, which
    the paper takes from the lock (Appendix G.1 and G.3: locking, SFT elicitation, expert iteration and
    filtering share them; DPO tries lr, lr/2 and lr/4). The built-in training methods use these, so one
    method is fair to a toy lock (AdamW 3e-4, batch 32) and to SmolLM2's (1e-4, batch 8, 1-16 epochs).
    The defaults are the toy configs' (and what a card made before cards held these gets)."""

    lr: float = 3e-4
    batch_size: int = 32
    """Capped at the number of examples."""
    optimizer: Literal["adamw", "lion"] = "adamw"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    epochs: Mapping[int, list[int]] | None = None
    """Candidate epoch counts per number of demonstrations (a k not named: the nearest named k's, on a
    log scale; None: Appendix G.3's)."""

    def __post_init__(self) -> None:  # a hand-edited card is checked where it is read, naming the field
        if not 0 < self.lr <= 1:
            raise ValueError(f"training.lr must be in (0, 1], got {self.lr}")
        if self.batch_size < 1 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("training.batch_size must be >= 1, warmup_steps and weight_decay >= 0")
        if any(k < 1 or not counts or min(counts) < 1 for k, counts in (self.epochs or {}).items()):
            raise ValueError(f"training.epochs: positive k to non-empty lists of positive counts, got {self.epochs}")

    def args(self, epochs: int, n_examples: int, seed: int) -> TrainArgs:
        """These settings for `epochs` epochs over `n_examples` examples (the batch capped at that)."""
        from pwlock.train.sft import TrainArgs  # torch: cards and configs are read without it

        return TrainArgs(epochs=epochs, batch_size=min(self.batch_size, n_examples), lr=self.lr,
                         optimizer=self.optimizer, warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                         seed=seed)
