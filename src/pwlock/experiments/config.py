"""Experiment configs: YAML in, typed and frozen objects out.

Unknown or ill-typed fields fail at load with the dotted path of the bad field. Library
functions never see these objects: the runner turns them into plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS


class ConfigError(ValueError):
    """A config that cannot be run; the message names the file and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(Strict):
    name: Literal["function_composition"] = "function_composition"
    n_problems: int = Field(30_000, gt=0)
    """Problems generated in all; split 10/40/30/20 into weak/lock/elicit/val."""
    n_composed: int = Field(2, ge=1, le=8)
    """Functions composed per problem."""
    n_weak_identity: int = Field(16, ge=0, le=32)
    """Functions pi_weak replaces by the identity."""
    seed: int = 0
    """Fixes the 32 functions and the problems."""
    split_seed: int = 0
    """Fixes the assignment of problems to splits."""


class ModelConfig(Strict):
    arch: Literal["llama", "gpt2"] = "llama"
    hidden_size: int = Field(128, gt=0)
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    max_length: int = Field(64, gt=0)
    seed: int = 0
    """Initialisation seed."""


class TrainConfig(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(gt=0)
    optimizer: Literal["adamw", "lion"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear"] = "constant"
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, ge=0)


class LockConfig(Strict):
    methods: list[Literal["sft", "from_scratch"]] = ["sft", "from_scratch"]
    """sft: train on pi_strong, then fine-tune on D_lock. from_scratch: train on D_lock only."""
    password: str = TOY_PASSWORD
    wrong_passwords: list[str] = list(TOY_WRONG_PASSWORDS)
    no_password_fraction: float = Field(0.2, ge=0, le=1)
    """Share of weak examples with no password; the rest get a wrong one (Appendix C.2)."""
    weak_policies: list[str] = ["weak"]
    """pi_weak of each lock: a policy of the task (e.g. weak, identity8) or `fixedrdm`, the
    fixed random token distribution of Appendix G.2. One locked model per entry."""
    pretrain: TrainConfig
    """Training of the strong base on pi_strong (sft method only)."""
    sft: TrainConfig
    """Fine-tuning the strong base on D_lock."""
    from_scratch: TrainConfig
    """Training a fresh model on D_lock."""

    @model_validator(mode="after")
    def _check(self) -> LockConfig:
        if not self.methods:
            raise ValueError("methods must name at least one lock method")
        if not self.weak_policies or len(set(self.weak_policies)) != len(self.weak_policies):
            raise ValueError("weak_policies must name at least one policy, each once")
        if self.password in self.wrong_passwords:
            raise ValueError(f"password {self.password!r} is also in wrong_passwords")
        return self


class SFTElicitConfig(Strict):
    ks: list[int] = [4, 16, 64, 256, 1024]
    """Numbers of demonstrations."""
    seeds: list[int] = [0, 1, 2]
    source: Literal["strong", "ground_truth", "weak"] = "strong"
    """Where demonstrations come from: pi_strong samples, reference answers, pi_weak samples."""
    epochs: dict[int, list[int]] | None = None
    """Candidate epochs per k; default Appendix G.3: {256,512,1024}/k for k<256, else {1,2,4}."""
    batch_size: int = Field(32, gt=0)
    """Capped at k."""
    lr: float = Field(3e-4, gt=0)
    """Constant after warm-up, the same for every k (as the paper)."""
    optimizer: Literal["adamw", "lion"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.01, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SFTElicitConfig:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must be a non-empty list of positive integers")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        return self


RL_METHODS = ("expert_iteration", "filtering", "dpo", "iterated_dpo")
DPO_METHODS = ("dpo", "iterated_dpo")


class RLElicitConfig(Strict):
    """Section 6.1: elicitation with a reward but no demonstrations."""

    methods: list[Literal["expert_iteration", "filtering", "dpo", "iterated_dpo"]] = list(RL_METHODS)
    seeds: list[int] = [0, 1, 2]
    reward: Literal["binary", "continuous"] = "binary"
    """What ranks candidates and weights DPO pairs: correctness, or the task's continuous reward (Eq. 2)."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature of candidates (top-p 1, no top-k)."""
    eval_every: int = Field(5, gt=0)
    """Expert iteration / filtering: evaluate every this many rounds (DPO: every epoch)."""
    rounds: int = Field(50, gt=0)
    """Expert iteration / filtering rounds (the paper: 50)."""
    n: int = Field(64, gt=0)
    """Keep the best n of 10n candidates per round (the paper: 64 of 640)."""
    epochs_per_round: int = Field(1, gt=0)
    lr: float = Field(3e-4, gt=0)
    """Expert iteration / filtering: the SFT elicitation's settings, as Appendix G.3."""
    batch_size: int = Field(32, gt=0)
    optimizer: Literal["adamw", "lion"] = "adamw"
    dpo_epochs: int = Field(12, gt=0)
    """DPO epochs / iterated DPO rounds (the paper: 12)."""
    dpo_problems: int = Field(1100, gt=0)
    """Elicitation problems sampled twice per epoch (the paper: its 1100-problem train set)."""
    dpo_lrs: list[float] = [3e-4, 1.5e-4, 7.5e-5]
    """DPO learning rates tried; the report keeps the best mean over seeds (Appendix G.3: lr, lr/2, lr/4)."""
    beta: float = Field(0.1, gt=0)
    dpo_batch_size: int = Field(32, gt=0)
    """Pairs per DPO step."""

    @model_validator(mode="after")
    def _check(self) -> RLElicitConfig:
        if not self.methods or not self.seeds:
            raise ValueError("methods and seeds must not be empty")
        if not self.dpo_lrs or min(self.dpo_lrs) <= 0:
            raise ValueError("dpo_lrs must be a non-empty list of positive learning rates")
        return self


class ElicitConfig(Strict):
    sft: SFTElicitConfig | None = SFTElicitConfig()
    rl: RLElicitConfig | None = None


class EvalConfig(Strict):
    max_problems: int | None = Field(None, gt=0)
    """Evaluate on the first N validation problems (all when null)."""
    batch_size: int = Field(500, gt=0)
    max_new_tokens: int = Field(32, gt=0)


class ExperimentConfig(Strict):
    name: str
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    lock: LockConfig
    elicit: ElicitConfig = ElicitConfig()
    eval: EvalConfig = EvalConfig()
    threads: int | None = Field(None, gt=0)
    """torch CPU threads (default: torch's choice)."""


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config, apply `key.sub=value` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields")
    for item in overrides or []:
        apply_override(raw, item)
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            field = ".".join(str(x) for x in err["loc"]) or "(top level)"
            lines.append(f"  {field}: {err['msg']}" + (f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""))
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(lines)) from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set a dotted key from `key.sub=value`; the value is parsed as YAML (`3`, `[1, 2]`)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a mapping")
    node[parts[-1]] = yaml.safe_load(value)
