"""Small core types shared by every stage of the data flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
