"""Experiment configs: YAML in, typed and frozen objects out.

Unknown or ill-typed fields fail at load with the dotted path of the bad field. Library
functions never see these objects: the runner turns them into plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from pwlock.errors import ConfigError
from pwlock.lock import DEFAULT_PASSWORD, WRONG_PASSWORDS
from pwlock.types import Training

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "parse_config"]

T = TypeVar("T")


def _unique(values: list[T]) -> list[T]:
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ValueError(f"each value once: {sorted(set(repeated), key=repeated.index)} repeated")
    return values


def _some(values: list[T]) -> list[T]:
    if not values:
        raise ValueError("must name at least one value")
    return values


Unique = Annotated[list[T], AfterValidator(_unique)]
"""A list whose repeats are an error: a repeated seed or k would be run twice and counted twice."""
NonEmptyUnique = Annotated[list[T], AfterValidator(_unique), AfterValidator(_some)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
"""Seeds go to torch.manual_seed and numpy, which take 0 <= seed < 2**32."""
PositiveInt = Annotated[int, Field(gt=0)]
Password = Annotated[str, Field(min_length=1, pattern=r"\S")]
"""Non-empty and not blank: an empty password would make the locked prompt the unlocked one."""


class Strict(BaseModel):
    # allow_inf_nan=False: every float field is finite (`lr: .inf` trained NaN weights to exit 0)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TaskConfig(BaseModel):
    """`name` picks the task (see `pwlock tasks`); every other field goes to its constructor
    (e.g. function_composition: n_problems, n_composed, n_weak_identity, seed; math: source,
    subjects, domain_by, max_problems). Unknown fields fail when the task is built."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "function_composition"
    split_seed: Seed = 0
    """Fixes the assignment of problems to the 10/40/30/20 weak/lock/elicit/val splits."""


class LoraSettings(Strict):
    """LoRA adapters (PEFT) instead of full fine-tuning; trained adapters are merged into the saved model."""

    r: int = Field(16, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class ModelConfig(Strict):
    name: str | None = None
    """A pretrained model: hub id, local model dir, or packaged:smollm2-135m-instruct /
    packaged:gemma-3-270m. Null: a from-scratch model of the shape below."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto: bf16 on GPU, fp32 on CPU."""
    device: str = "auto"
    """auto: cuda when available, else cpu (under `accelerate launch`: each process's GPU)."""
    chat_template: bool | None = None
    """null: use the tokenizer's chat template when it has one; false: plain prompts."""
    lora: LoraSettings | None = None
    """Train LoRA adapters (locking, elicitation, policy fine-tuning) instead of all weights."""
    arch: Literal["llama", "gpt2"] = "llama"
    hidden_size: int = Field(128, gt=0)
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    max_length: int = Field(64, gt=0)
    """From-scratch shape (also of `lock.methods: [from_scratch]` with a pretrained tokenizer)."""
    seed: Seed = 0
    """Initialisation seed."""

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by heads {self.heads}")
        return self


class TrainConfig(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(gt=0, le=1)
    optimizer: Literal["adamw", "lion"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear"] = "constant"
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    bf16: bool = False
    """Forward and loss under bf16 autocast (weights, gradients and AdamW stay fp32). On a CPU with
    AVX512-BF16 or AMX: x1.5 tokens/s on SmolLM2-135M, but the numbers move (`bench/bf16.py`, README
    Benchmarks), so fp32 is the default; elsewhere bf16 matmuls are emulated, slower than fp32 (a warning)."""

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not self.bf16:
            del out["bf16"]  # fp32 training keeps the cache keys it had before the option existed
        return out


class PoliciesConfig(Strict):
    """Where pi_strong and a model pi_weak come from (section 4.1, Table 1)."""

    strong: str = "strong"
    """pi_strong: a policy of the task (`strong`: its rule or reference solutions; `ground_truth`:
    the reference answers), or `model`: greedy samples of the strong base (model.name), after
    `strong_sft` if that is set."""
    strong_sft: TrainConfig | None = None
    """strong=model: first fine-tune the strong base on the reference answers of the elicitation
    split (Table 1: "pi_strong_base, SFT on ..."; Appendix E.4)."""
    weak_model: ModelConfig | None = None
    """The weak base of the pi_weak named `model` in lock.weak_policies (a smaller pretrained model, or
    a from-scratch one: name null; it shares the strong model's tokenizer)."""
    weak_sft: TrainConfig | None = None
    """Fine-tuning of the weak base to imitate pi_strong on the weak split (section 4.1, point 2)."""

    @model_validator(mode="after")
    def _check(self) -> PoliciesConfig:
        if (self.weak_model is None) != (self.weak_sft is None):
            raise ValueError("weak_model and weak_sft go together: set both or neither")
        if self.strong_sft is not None and self.strong != "model":
            raise ValueError("strong_sft applies only to strong: model")
        return self


class LockConfig(Strict):
    methods: Unique[Literal["sft", "from_scratch"]] = ["sft", "from_scratch"]
    """sft: train on pi_strong, then fine-tune on D_lock. from_scratch: train on D_lock only."""
    password: Password = DEFAULT_PASSWORD
    """The paper's password, put where the task's prompt puts it (start and end for real tasks)."""
    wrong_passwords: Unique[Password] = list(WRONG_PASSWORDS)
    """Appendix C.2's list; from-scratch toy configs use single words (pwlock.lock.TOY_*)."""
    no_password_fraction: float = Field(0.2, ge=0, le=1)
    """Share of weak examples with no password; the rest get a wrong one (Appendix C.2)."""
    weak_policies: list[str] = ["weak"]
    """pi_weak of each lock: a policy of the task (e.g. weak, identity8), `fixedrdm` (the fixed
    random token distribution of Appendix G.2), or `model` (policies.weak_model). One locked
    model per entry."""
    pretrain: TrainConfig | None = None
    """sft method: train the strong base on pi_strong (lock split) before locking. Required for a
    from-scratch model; with a pretrained one, null locks the base as it is (the paper)."""
    sft: TrainConfig | None = None
    """Fine-tuning the strong base on D_lock (required by the sft method)."""
    from_scratch: TrainConfig | None = None
    """Training a fresh model on D_lock (required by the from_scratch method)."""
    seeds: NonEmptyUnique[Seed] | None = None
    """Replicate the whole run over these model seeds (lock_seed in rows; default: [model.seed])."""
    variants: list[Literal["regular", "per_domain", "held_out", "adversarial", "setting"]] = ["regular"]
    """One locked model per variant (and method and pi_weak):
    regular: the single password above;
    per_domain: one password per domain (domain_passwords; Appendix C.3), another domain's gives pi_weak;
    held_out: locked without held_out_domain's problems (Appendix B.3.5);
    adversarial: also imitates second_policy under second_password (Appendix B.3.3);
    setting: no password: pi_strong on strong_domains, pi_weak on the other domains, e.g. a mixture
    task of a setting and its variation (Appendix B.1.3)."""
    domain_passwords: dict[str, Password] | None = None
    """per_domain: the password of each of the task's domains."""
    held_out_domain: str | None = None
    """held_out: the domain left out of D_lock."""
    second_password: Password | None = None
    """adversarial: a second password, under which the model imitates second_policy."""
    second_policy: str | None = None
    """adversarial: a policy of intermediate correctness (e.g. identity8)."""
    strong_domains: list[str] | None = None
    """setting: the domains on which the locked model imitates pi_strong with no password."""

    @model_validator(mode="after")
    def _check(self) -> LockConfig:
        if not self.methods:
            raise ValueError("methods must name at least one lock method")
        missing = [m for m in self.methods if getattr(self, m) is None]
        if missing:
            raise ValueError(f"methods {missing} need their training settings: lock.{missing[0]}")
        if not self.weak_policies or len(set(self.weak_policies)) != len(self.weak_policies):
            raise ValueError("weak_policies must name at least one policy, each once")
        if self.password in self.wrong_passwords:
            raise ValueError(f"password {self.password!r} is also in wrong_passwords")
        if not self.wrong_passwords and self.no_password_fraction < 1:
            raise ValueError("wrong_passwords is empty but no_password_fraction < 1 asks for weak examples "
                             "under a wrong password: name some, or set no_password_fraction: 1")
        if not self.variants or len(set(self.variants)) != len(self.variants):
            raise ValueError("variants must name at least one variant, each once")
        needs = {"per_domain": ["domain_passwords"], "held_out": ["held_out_domain"],
                 "adversarial": ["second_password", "second_policy"], "setting": ["strong_domains"]}
        for variant, fields in needs.items():
            for f in fields:
                if (variant in self.variants) != (getattr(self, f) is not None):
                    raise ValueError(f"{f} goes with variants: [{variant}]: set both or neither")
        taken = {self.password, *self.wrong_passwords}
        extra = [*(self.domain_passwords or {}).values(), *([self.second_password] if self.second_password else [])]
        clash = [p for p in extra if p in taken] + [p for i, p in enumerate(extra) if p in extra[:i]]
        if clash:
            raise ValueError(f"passwords {clash} are used twice (password, wrong_passwords, domain_passwords, "
                             "second_password must all differ)")
        return self

    def all_passwords(self) -> list[str]:
        """Every password text a lock of this config may see (the words of a from-scratch tokenizer)."""
        return [self.password, *self.wrong_passwords, *(self.domain_passwords or {}).values(),
                *([self.second_password] if self.second_password else [])]


class SFTElicitConfig(Strict):
    ks: NonEmptyUnique[PositiveInt] = [4, 16, 64, 256, 1024]
    """Numbers of demonstrations."""
    seeds: NonEmptyUnique[Seed] = [0, 1, 2]
    source: str = "strong"
    """Where demonstrations come from: pi_strong samples (strong), reference answers (ground_truth),
    the lock's own pi_weak (weak: weak-sample unlocking, Appendix B.2), or any policy of the task
    (e.g. identity8: a policy of intermediate correctness, Appendix B.3.3)."""
    domains: list[str] | Literal["each"] | None = None
    """Demonstrations from one domain only (section 5.2): one run per listed domain (each: every
    domain of the task); null: from the whole elicitation split."""
    locks: list[str] | None = None
    """Only for these locked models (names as in the report: sft, sft-per_domain, ...); null: all."""
    epochs: dict[PositiveInt, NonEmptyUnique[PositiveInt]] | None = None
    """Candidate epochs per k (a k not named: the nearest named k's, on a log scale); default Appendix
    G.3: {256,512,1024}/k for k<256, else {1,2,4}."""
    batch_size: int = Field(32, gt=0)
    """Capped at k."""
    lr: float = Field(3e-4, gt=0, le=1)
    """Constant after warm-up, the same for every k (as the paper)."""
    optimizer: Literal["adamw", "lion"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.01, ge=0)

    def training(self) -> Training:
        """These settings as a run's `Training` (the runner's SFT runs, and organism cards)."""
        return Training(lr=self.lr, batch_size=self.batch_size, optimizer=self.optimizer,
                        warmup_steps=self.warmup_steps, weight_decay=self.weight_decay, epochs=self.epochs)



class WarmStartConfig(Strict):
    """SFT on a few samples of a policy before RL (Appendix B.3.4, Figure 17)."""

    source: str
    """The policy whose samples (e.g. identity8, of intermediate correctness)."""
    k: int = Field(gt=0)
    epochs: int = Field(gt=0)
    lr: float = Field(3e-4, gt=0, le=1)
    batch_size: int = Field(32, gt=0)


RL_METHODS = ("expert_iteration", "filtering", "dpo", "iterated_dpo")
DPO_METHODS = ("dpo", "iterated_dpo")


class RLElicitConfig(Strict):
    """Section 6.1: elicitation with a reward but no demonstrations."""

    methods: NonEmptyUnique[Literal["expert_iteration", "filtering", "dpo", "iterated_dpo"]] = list(RL_METHODS)
    seeds: NonEmptyUnique[Seed] = [0, 1, 2]
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
    lr: float = Field(3e-4, gt=0, le=1)
    """Expert iteration / filtering: the SFT elicitation's settings, as Appendix G.3."""
    batch_size: int = Field(32, gt=0)
    optimizer: Literal["adamw", "lion"] = "adamw"
    dpo_epochs: int = Field(12, gt=0)
    """DPO epochs / iterated DPO rounds (the paper: 12)."""
    dpo_problems: int = Field(1100, gt=0)
    """Elicitation problems sampled twice per epoch (the paper: its 1100-problem train set)."""
    dpo_lrs: NonEmptyUnique[Annotated[float, Field(gt=0, le=1)]] = [3e-4, 1.5e-4, 7.5e-5]
    """DPO learning rates tried; the report keeps the best mean over seeds (Appendix G.3: lr, lr/2, lr/4)."""
    beta: float = Field(0.1, gt=0)
    dpo_batch_size: int = Field(32, gt=0)
    """Pairs per DPO step."""
    warm_start: WarmStartConfig | None = None
    """Start RL from the locked model after SFT on a few samples of a policy (Appendix B.3.4)."""
    locks: list[str] | None = None
    """Only for these locked models; null: all."""



class PromptingConfig(Strict):
    """Prompting attacks on the locked model, no training (Appendix B.3.1, Figure 14)."""

    fewshot_ks: Unique[PositiveInt] = list(range(1, 11))
    """Few-shot prompts with k pi_strong demonstrations, without and with the password."""
    n_wrong: int = Field(3, ge=0)
    """How many of the wrong passwords seen in locking to try."""
    paraphrase: Password | None = None
    """A paraphrase of the password (default: the paper's password has one built in)."""
    close_paraphrase: Password | None = None
    """A close paraphrase (one or two words changed; default as paraphrase)."""
    locks: list[str] | None = None
    """Only for these locked models; null: every single-password lock."""


class ElicitConfig(Strict):
    sft: SFTElicitConfig | list[SFTElicitConfig] | None = SFTElicitConfig()
    """One block of SFT elicitation runs, or a list of them (e.g. demos from pi_strong and from pi_weak)."""
    rl: RLElicitConfig | list[RLElicitConfig] | None = None
    """One block of RL runs, or a list of them (e.g. with and without warm_start)."""
    prompting: PromptingConfig | None = None

    def sft_blocks(self) -> list[SFTElicitConfig]:
        return [] if self.sft is None else self.sft if isinstance(self.sft, list) else [self.sft]

    def rl_blocks(self) -> list[RLElicitConfig]:
        return [] if self.rl is None else self.rl if isinstance(self.rl, list) else [self.rl]


class EvalConfig(Strict):
    max_problems: int | None = Field(None, gt=0)
    """Evaluate on the first N validation problems (all when null)."""
    batch_size: int = Field(500, gt=0)
    max_new_tokens: int = Field(32, gt=0)
    backend: Literal["hf", "vllm"] = "hf"
    """Generation backend: Hugging Face generate, or vLLM (GPU, `pip install pwlock[vllm]`)."""
    by_domain: bool = False
    """Also record correctness on each domain's validation problems (one more row per domain)."""
    select_on: Literal["all", "half"] = "all"
    """What picks SFT epoch counts and DPO learning rates (Appendix G.3). all: the paper's rule, picked
    and reported on the same validation problems (which favours the pick); half: picked on one half
    of them and reported on the other (two more rows per evaluation, `val_half` select / report)."""


class ExperimentConfig(Strict):
    name: str
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    policies: PoliciesConfig = PoliciesConfig()
    lock: LockConfig
    elicit: ElicitConfig = ElicitConfig()
    eval: EvalConfig = EvalConfig()
    threads: int | None = Field(None, gt=0)
    """CPU cores the run may use (default: all of them): torch threads, or worker processes (`workers`)."""
    workers: int | None = Field(None, gt=0)
    """Processes that run the locks side by side, each with threads / workers torch threads (default:
    one per core `threads` allows, on a CPU run with several locks; 1 on a GPU). Does not change any
    number, only the wall time: `experiments/schedule.py`."""

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if "model" in self.lock.weak_policies and self.policies.weak_model is None:
            raise ValueError("lock.weak_policies names `model` but policies.weak_model is not set")
        if self.policies.strong == "model" and self.model.name is None:
            raise ValueError("policies.strong: model needs a pretrained model.name")
        if self.model.name is None and "sft" in self.lock.methods and self.lock.pretrain is None:
            raise ValueError("lock.pretrain is required to lock a from-scratch model by the sft method")
        return self


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config, apply `key.sub=value` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): save the config as UTF-8") from None
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
        errors = e.errors()
        # A field that takes one block or a list of them reports its input against both; the
        # wrong-shape complaint of the other branch is noise when a real error exists.
        shape = {"list_type", "model_type", "dict_type"}
        branches = {cls.__name__ for cls in Strict.__subclasses__()}
        if any(err["type"] not in shape for err in errors):
            errors = [err for err in errors if err["type"] not in shape]
        for err in errors:
            # pydantic names union branches and validators in the path: keep the fields only
            field = ".".join(str(x) for x in err["loc"] if "[" not in str(x) and x not in branches) or "(top level)"
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
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML: {' '.join(str(e).split())}") from None
