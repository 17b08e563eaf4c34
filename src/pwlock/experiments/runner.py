"""Run a config end to end: task -> lock -> evaluate -> elicit -> record.

Every expensive step is a content-addressed unit (see `store.py`): re-running a config
skips finished units, and a killed run resumes where it stopped. `Experiment.run` reads
top to bottom as the paper's pipeline; each step below it is one unit.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import pydantic
import torch
from transformers import AutoConfig

from pwlock import __version__
from pwlock.elicit.dpo import dpo
from pwlock.elicit.expert_iteration import expert_iteration
from pwlock.elicit.sft import default_epochs, elicit_sft, pick_demos
from pwlock.evaluate import Evaluation, evaluate
from pwlock.experiments.config import (
    DPO_METHODS,
    ConfigError,
    ExperimentConfig,
    ModelConfig,
    PoliciesConfig,
    TrainConfig,
)
from pwlock.experiments.store import Store, digest
from pwlock.fixedrdm import FixedRandomDistribution
from pwlock.generate import Generator, generate
from pwlock.io import RESULTS, RUN_MARKER, write_atomic, write_jsonl
from pwlock.lock import lock_examples, lock_name
from pwlock.lora import add_lora, merged
from pwlock.models import build_model, build_tokenizer, load_model, resolve_model
from pwlock.models.pretrained import default_device, load_tokenizer
from pwlock.models.scratch import WORD_PATTERN
from pwlock.tasks import TASKS, Task, split_problems
from pwlock.tasks.base import reward_all, score_all
from pwlock.train import accel
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example, Problem

ROW_FIELDS = (
    "setting", "task", "task_version", "policy", "lock_method", "weak_policy", "elicitation", "demo_source",
    "k", "epochs", "reward", "lr", "samples", "seed", "with_password", "correctness", "n", "unit",
)
"""One row per measurement. k/epochs/demo_source: SFT elicitation; reward/lr/samples (completions
generated so far): RL elicitation; None where a field does not apply."""

FIXEDRDM = "fixedrdm"
SCRATCH_FIELDS = {"arch", "hidden_size", "layers", "heads", "max_length", "seed"}
# The elicit.rl fields each kind of RL unit depends on (its cache key), besides lr and seed.
EXPERT_ITERATION_FIELDS = {"reward", "temperature", "eval_every", "rounds", "n", "epochs_per_round", "batch_size",
                           "optimizer"}
DPO_FIELDS = {"reward", "temperature", "dpo_epochs", "dpo_problems", "beta", "dpo_batch_size", "optimizer"}


class RunDirError(ConfigError):
    """The output folder cannot hold this run (foreign contents or another config)."""


def log(msg: str) -> None:
    print(f"[pwlock] {msg}", file=sys.stderr, flush=True)


def row(**fields: Any) -> dict[str, Any]:
    """A results row with every column present (None where it does not apply)."""
    unknown = set(fields) - set(ROW_FIELDS)
    assert not unknown, unknown
    return {name: fields.get(name) for name in ROW_FIELDS}


def train_args(cfg: TrainConfig, seed: int) -> TrainArgs:
    return TrainArgs(seed=seed, **cfg.model_dump())


def password_words(texts: list[str]) -> list[str]:
    """The words a from-scratch tokenizer needs to spell these passwords."""
    return list(dict.fromkeys(w for text in texts for w in re.findall(WORD_PATTERN, text)))


def build_task(cfg: ExperimentConfig) -> Task:
    """The task named by `task.name`, its other fields checked against the constructor's signature."""
    if cfg.task.name not in TASKS:
        raise ConfigError(f"task.name: unknown task {cfg.task.name!r}; known: {sorted(TASKS)}")
    params = cfg.task.model_dump(exclude={"name", "split_seed"})
    cls = TASKS[cfg.task.name]
    task = cls.__new__(cls)
    try:
        pydantic.validate_call(cls.__init__)(task, **params)  # coerces and checks by the type hints
        return task
    except pydantic.ValidationError as e:
        lines = [f"  task.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"task ({cfg.task.name}): invalid fields\n" + "\n".join(lines)) from None
    except ValueError as e:
        raise ConfigError(f"task: {e}") from None


def check_runnable(cfg: ExperimentConfig, task: Task, splits: dict[str, list[Problem]]) -> None:
    """Fail before any work on what a config can only reveal against the task and its data."""
    n = sum(len(v) for v in splits.values())
    if not splits["lock"] or not splits["val"]:
        raise ConfigError(f"the task's {n} problems leave an empty lock or validation split")
    known = [name for name in task.policies() if name != "strong"] + [FIXEDRDM, "ground_truth"]
    known += ["model"] if cfg.policies.weak_model is not None else []
    strong_known = [*task.policies(), "ground_truth", "model"]
    if cfg.policies.strong not in strong_known:
        raise ConfigError(f"policies.strong: {cfg.policies.strong!r} unknown; {task.name} offers {strong_known}")
    unknown = [w for w in cfg.lock.weak_policies if w not in known]
    if unknown:
        raise ConfigError(f"lock.weak_policies: {unknown} unknown; {task.name} offers {known}")
    n_elicit = len(splits["elicit"])
    rl = cfg.elicit.rl
    if rl is not None and max(10 * rl.n, rl.dpo_problems) > n_elicit:
        raise ConfigError(f"elicit.rl: 10n={10 * rl.n} and dpo_problems={rl.dpo_problems} must fit in the "
                          f"elicitation split ({n_elicit} problems)")
    if cfg.elicit.sft is not None:
        too_big = [k for k in cfg.elicit.sft.ks if k > n_elicit]
        if too_big:
            raise ConfigError(
                f"elicit.sft.ks: k={too_big} exceeds the elicitation split ({n_elicit} problems "
                f"= 30% of the task's {n} problems)"
            )


def prepare_run_dir(out: Path, cfg: ExperimentConfig) -> None:
    """Create `out` for this config, or accept it if it already holds this config's run."""
    marker = out / RUN_MARKER
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    if marker.is_file():
        if json.loads(marker.read_text())["config"] != cfg.model_dump(mode="json"):
            raise RunDirError(f"{out} holds a run of a different config; use another --out, or delete it")
        return
    if out.is_dir() and any(out.iterdir()):
        raise RunDirError(f"{out} is not empty and is not a pwlock run dir (no {RUN_MARKER})")
    write_atomic(marker, json.dumps({"pwlock": __version__, "config": cfg.model_dump(mode="json")}, indent=1))


def make_generator(cfg: ExperimentConfig) -> Generator:
    if cfg.eval.backend == "hf":
        return generate
    from pwlock.vllm_backend import VLLMGenerator

    dtype = cfg.model.dtype if cfg.model.dtype != "auto" else "bfloat16"
    return VLLMGenerator(dtype=dtype)


def run_experiment(cfg: ExperimentConfig, out: Path, cache_dir: Path | None = None) -> float:
    """Run (or resume) `cfg` into `out`, writing `results.jsonl`; returns the wall seconds."""
    start = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = build_task(cfg)
    splits = split_problems(task.problems(), cfg.task.split_seed)
    check_runnable(cfg, task, splits)
    if accel.is_main_process():  # under `accelerate launch` every process runs this; one writes
        prepare_run_dir(out, cfg)
    accel.wait()
    rows = Experiment(cfg, task, splits, Store(cache_dir or out / "cache")).run()
    if accel.is_main_process():
        write_jsonl(out / RESULTS, rows)
    return time.time() - start


class Experiment:
    """The pipeline of one config; every method that trains or evaluates is a cached unit."""

    def __init__(self, cfg: ExperimentConfig, task: Task, splits: dict[str, list[Problem]], store: Store) -> None:
        self.cfg, self.task, self.splits, self.store = cfg, task, splits, store
        self.val = splits["val"][: cfg.eval.max_problems]
        self.base = dict(setting=cfg.name, task=task.name, task_version=task.version)
        self.generator = make_generator(cfg)
        if cfg.model.name is None:  # from scratch: a word-level tokenizer over the task and passwords
            words = password_words([cfg.lock.password, *cfg.lock.wrong_passwords])
            self.tokenizer = build_tokenizer(task.vocabulary + words)
            vocab_size = len(self.tokenizer)
        else:
            words = []
            self.tokenizer = load_tokenizer(cfg.model.name, chat_template=cfg.model.chat_template)
            vocab_size = AutoConfig.from_pretrained(resolve_model(cfg.model.name)).vocab_size
        # Everything a trained model depends on besides its own training settings.
        self.key = {"task": cfg.task.model_dump(), "version": task.version, "model": cfg.model.model_dump(),
                    "words": words}
        self.policies = task.policies()
        self.rdm = FixedRandomDistribution(vocab_size, seed=cfg.model.seed)

    def run(self) -> list[dict[str, Any]]:
        log(f"{self.task.name}: splits " + ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
            + f"; evaluating on {len(self.val)} validation problems")
        rows = []
        for name in ("strong", *self.cfg.lock.weak_policies):
            completions = self.sample_policy(name, self.val, random.Random("policy-eval"))
            correct = sum(score_all(self.task, self.val, completions)) / len(self.val)
            rows.append(row(**self.base, policy=name, with_password=False, n=len(self.val), correctness=correct))
            log(f"policy {name}: correctness {correct:.3f}")
        for method in self.cfg.lock.methods:
            for weak in self.cfg.lock.weak_policies:
                lock_dir = self.lock(method, weak)
                locked, tokenizer = self.load(lock_dir / "model")
                rows += self.evaluate_locked(method, weak, lock_dir, locked, tokenizer)
                if self.cfg.elicit.sft is not None:
                    rows += self.elicit_sft(method, weak, lock_dir, locked, tokenizer)
                if self.cfg.elicit.rl is not None:
                    rows += self.elicit_rl(method, weak, lock_dir, locked, tokenizer)
        return [{**r, **self.base} for r in rows]  # units from a shared cache may carry another setting name

    def sample_policy(self, name: str, problems: list[Problem], rng: random.Random,
                      temperature: float = 0.0) -> list[str]:
        """Completions of a policy for `problems`:

        - `strong`: pi_strong, as `policies.strong` says (a task policy, the reference answers, or
          the strong model's greedy samples);
        - `model`: the weak model (greedy samples, or sampled at `temperature` > 0: filtering);
        - `fixedrdm`: fixed-distribution samples as long as pi_strong's completions, in tokens;
        - `ground_truth`: the reference answers; anything else: a rule-based policy of the task.
        """
        if name == "strong":
            name = self.cfg.policies.strong
            if name == "model":
                return self.model_samples(self.strong_model(), problems)
        if name == "model":
            if temperature > 0:  # filtering: fresh samples every round
                model, tokenizer = self.weak_policy_model
                return self.generator(model, tokenizer, [self.task.prompt(p, None) for p in problems],
                                      temperature=temperature, seed=rng.randrange(2**31), desc="sample pi_weak",
                                      max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size)
            return self.model_samples(self.weak_model(), problems, self.cfg.policies.weak_model)
        if name == "ground_truth":
            return [p.answer for p in problems]
        if name != FIXEDRDM:
            return [self.policies[name](p) for p in problems]
        strong = self.sample_policy("strong", problems, rng)
        lengths = [len(ids) for ids in self.tokenizer(strong, add_special_tokens=False)["input_ids"]]
        return self.rdm.sample(self.tokenizer, lengths, rng)

    # -- models --------------------------------------------------------------------------

    @functools.cached_property
    def weak_policy_model(self) -> tuple[Any, Any]:
        """pi_weak's model and tokenizer, loaded once for sampling."""
        return self.load(self.weak_model(), self.cfg.policies.weak_model)

    def load(self, path: str | Path, settings: ModelConfig | None = None) -> tuple[Any, Any]:
        """A model with the dtype, device and chat template of `settings` (default: `model`)."""
        m = settings or self.cfg.model
        return load_model(path, dtype=m.dtype, device=m.device, chat_template=m.chat_template)

    def base_model(self, name: str | Path | None, settings: ModelConfig) -> tuple[Any, Any]:
        """The model a training starts from, and its tokenizer: a pretrained model by name or path (with
        its own tokenizer), or for None a fresh one of `settings`' shape on the run's tokenizer."""
        if name is not None:
            return self.load(name, settings)
        model = build_model(self.tokenizer, vocab_size=self.rdm.logprobs.shape[0],
                            **settings.model_dump(include=SCRATCH_FIELDS))
        device = default_device() if self.cfg.model.device == "auto" else self.cfg.model.device
        return model.to(device), self.tokenizer

    def train(self, model: Any, data: Any, args: TrainArgs, desc: str, kl_target: Any = None,
              tokenizer: Any = None) -> Any:
        """SFT `model` (LoRA adapters when model.lora is set); returns the trained plain model.
        `tokenizer`: the model's own when it is not the run's (a pretrained weak base)."""
        model = self.trainable(model, args.seed)
        sft(model, tokenizer or self.tokenizer, data, args, desc=desc, kl_target=kl_target)
        return merged(model)

    def trainable(self, model: Any, seed: int) -> Any:
        """`model` itself, or wrapped with fresh LoRA adapters when model.lora is set."""
        lora = self.cfg.model.lora
        return model if lora is None else add_lora(model, **lora.model_dump(), seed=seed)

    def ident(self, model: str | Path) -> str:
        """How a model enters cache keys: the name of the unit that trained it (`<cache>/<unit>/model`),
        else its configured name (hub id, path, packaged:...), never where a cache happens to be."""
        path = Path(str(model))
        return path.parent.name if path.parent.parent == self.store.root else str(model)

    def save(self, model: Any, folder: Path, tokenizer: Any = None) -> None:
        accel.save_pretrained(merged(model), folder / "model")
        (tokenizer or self.tokenizer).save_pretrained(folder / "model")

    # -- units ---------------------------------------------------------------------------

    def model_samples(self, model_dir: str | Path, problems: list[Problem],
                      settings: ModelConfig | None = None) -> list[str]:
        """Greedy completions of a model for `problems`, without password (cached); for
        multiple-choice tasks, its highest-logit letters."""
        ident = self.ident(model_dir)
        key = {**self.key, "model_dir": ident, "problems": digest([p.id for p in problems]),
               "max_new_tokens": self.cfg.eval.max_new_tokens}

        def compute(folder: Path) -> list[dict[str, Any]]:
            model, tokenizer = self.load(model_dir, settings)
            ev = evaluate(model, tokenizer, self.task, problems, password=None, generator=self.generator,
                          max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size)
            return [{"id": p.id, "completion": c} for p, c in zip(problems, ev.completions)]

        of = ident.rsplit("-", 1)[0] if ident != str(model_dir) else "base"  # pi_strong, pi_weak, base
        _, rows = self.store.run(f"samples_{of}", key, compute)
        return [r["completion"] for r in rows]

    def strong_model(self) -> str | Path:
        """pi_strong's model (policies.strong = model): the strong base, fine-tuned on the reference
        answers of the weak and lock splits when policies.strong_sft is set."""
        train = self.cfg.policies.strong_sft
        if train is None:
            assert self.cfg.model.name is not None
            return self.cfg.model.name

        def compute(folder: Path) -> list[dict[str, Any]]:
            log("fine-tuning the strong base on reference answers: pi_strong")
            model, _ = self.base_model(self.cfg.model.name, self.cfg.model)
            problems = self.splits["weak"] + self.splits["lock"]
            data = [Example(self.task.prompt(p, None), p.answer) for p in problems]
            self.save(self.train(model, lambda _: data, train_args(train, self.cfg.model.seed), "pi_strong"), folder)
            return []

        folder, _ = self.store.run("pi_strong", {**self.key, "strong_sft": train.model_dump()}, compute)
        return folder / "model"

    def weak_model(self) -> Path:
        """pi_weak's model: the weak base fine-tuned to imitate pi_strong on the weak split (section 4.1)."""
        pol = self.cfg.policies
        assert pol.weak_model is not None and pol.weak_sft is not None
        problems = self.splits["weak"]
        strong = self.sample_policy("strong", problems, random.Random(0))
        key = {**self.key, "weak_model": pol.weak_model.model_dump(), "weak_sft": pol.weak_sft.model_dump(),
               "strong": self.strong_key()}

        def compute(folder: Path) -> list[dict[str, Any]]:
            log("fine-tuning the weak base to imitate pi_strong: pi_weak")
            model, tokenizer = self.base_model(pol.weak_model.name, pol.weak_model)  # keeps its own tokenizer
            data = [Example(self.task.prompt(p, None), c) for p, c in zip(problems, strong)]
            args = train_args(pol.weak_sft, pol.weak_model.seed)
            self.save(self.train(model, lambda _: data, args, "pi_weak", tokenizer=tokenizer), folder, tokenizer)
            return []

        folder, _ = self.store.run("pi_weak", key, compute)
        return folder / "model"

    def strong_base(self) -> str | Path:
        """The model the sft lock starts from: a pretrained base as it is, or a model (fresh, or the
        pretrained base) trained on pi_strong over the lock split (lock.pretrain)."""
        pretrain = self.cfg.lock.pretrain
        if pretrain is None:
            assert self.cfg.model.name is not None
            return self.cfg.model.name
        strong = self.sample_policy("strong", self.splits["lock"], random.Random(0))

        def compute(folder: Path) -> list[dict[str, Any]]:
            log("training the strong base model on pi_strong")
            model, _ = self.base_model(self.cfg.model.name, self.cfg.model)
            data = [Example(self.task.prompt(p, None), s) for p, s in zip(self.splits["lock"], strong)]
            self.save(self.train(model, lambda _: data, train_args(pretrain, self.cfg.model.seed), "pretrain"), folder)
            return []

        key = {**self.key, "pretrain": pretrain.model_dump(), "strong": self.strong_key()}
        folder, _ = self.store.run("strong_base", key, compute)
        return folder / "model"

    def strong_key(self) -> Any:
        """What pi_strong's completions depend on, for the keys of units trained on them."""
        pol = self.cfg.policies
        return None if pol == PoliciesConfig() else pol.model_dump(include={"strong", "strong_sft"})

    def lock(self, method: str, weak: str) -> Path:
        """Password-lock by Eq. 1: from the strong base (`sft`) or from a fresh model (`from_scratch`).

        pi_weak is one of the task's policies, the weak model, or fixedrdm: then the weak examples
        (no or a wrong password) are trained by KL toward the fixed distribution, on fixedrdm samples
        and on pi_strong completions half each (Appendix G.2).
        """
        lock = self.cfg.lock
        key = {**self.key, "method": method, "weak": weak, "strong": self.strong_key(),
               "lock": lock.model_dump(include={"password", "wrong_passwords", "no_password_fraction"})}
        if weak == "model":
            key["weak_model"] = self.cfg.policies.model_dump(include={"weak_model", "weak_sft"})
        if method == "sft":
            base, train = self.strong_base(), lock.sft
            key["base"] = self.ident(base)
        else:
            base, train = None, lock.from_scratch
        assert train is not None  # the config checks each listed method has its settings
        key["train"] = train.model_dump()

        problems = self.splits["lock"]
        strong = self.sample_policy("strong", problems, random.Random(0))
        weak_lock = None if weak == FIXEDRDM else self.sample_policy(weak, problems, random.Random(0))

        def d_lock(epoch: int) -> list[Example]:
            rng = random.Random(f"lock-{epoch}")
            if weak_lock is not None:
                weak_side = weak_lock
            else:
                noise = self.sample_policy(FIXEDRDM, problems, rng)
                weak_side = [s if rng.random() < 0.5 else x for s, x in zip(strong, noise)]
            return lock_examples(
                self.task, problems, strong, weak_side, password=lock.password,
                wrong_passwords=lock.wrong_passwords, no_password_fraction=lock.no_password_fraction,
                rng=rng, weak_kl=weak_lock is None,
            )

        name = lock_name(method, weak)

        def compute(folder: Path) -> list[dict[str, Any]]:
            log(f"password-locking ({name})")
            model, _ = self.base_model(base, self.cfg.model)
            self.save(self.train(model, d_lock, train_args(train, self.cfg.model.seed), f"lock {name}",
                                 kl_target=self.rdm.logprobs), folder)
            return []

        folder, _ = self.store.run(f"lock_{name}", key, compute)
        return folder

    def evaluate_locked(self, method: str, weak: str, lock_dir: Path, model: Any, tokenizer: Any) -> list[dict[str, Any]]:
        """Greedy correctness of the locked model with and without the password."""

        def compute(folder: Path) -> list[dict[str, Any]]:
            rows = []
            for password in (self.cfg.lock.password, None):
                ev = evaluate(model, tokenizer, self.task, self.val, password=password,
                              max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size,
                              generator=self.generator)
                rows.append(row(**self.base, policy="locked", lock_method=method, weak_policy=weak,
                                with_password=password is not None, correctness=ev.correctness, n=ev.n))
                self.save_completions(folder / f"completions_{'with' if password else 'without'}_password.jsonl", ev)
            return rows

        name = lock_name(method, weak)
        _, rows = self.store.run(f"eval_lock_{name}", {"locked": lock_dir.name, "eval": self.cfg.eval.model_dump()},
                                 compute)
        by_pw = {r["with_password"]: r["correctness"] for r in rows}
        log(f"locked ({name}): with password {by_pw[True]:.3f}, without {by_pw[False]:.3f}")
        return rows

    def elicit_sft(self, method: str, weak: str, lock_dir: Path, locked: Any, tokenizer: Any) -> list[dict[str, Any]]:
        """SFT on k demonstrations per (k, seed), each evaluated at its candidate epoch counts."""
        ecfg = self.cfg.elicit.sft
        assert ecfg is not None
        source = weak if ecfg.source == "weak" else ecfg.source  # weak: this lock's own pi_weak

        def complete(problems: list[Problem]) -> list[str]:
            return self.sample_policy(source, problems, random.Random("demos"))

        name = lock_name(method, weak)
        rows: list[dict[str, Any]] = []
        for k in ecfg.ks:
            epochs = (ecfg.epochs or {}).get(k) or default_epochs(k)
            for seed in ecfg.seeds:
                args = TrainArgs(epochs=max(epochs), batch_size=min(ecfg.batch_size, k), lr=ecfg.lr,
                                 optimizer=ecfg.optimizer, warmup_steps=ecfg.warmup_steps,
                                 weight_decay=ecfg.weight_decay, seed=seed)
                key = {"locked": lock_dir.name, "k": k, "seed": seed, "epochs": epochs,
                       "eval": self.cfg.eval.model_dump(), "elicit": ecfg.model_dump(exclude={"ks", "seeds", "epochs"})}

                def compute(folder: Path, k: int = k, seed: int = seed, epochs: list[int] = epochs,
                            args: TrainArgs = args) -> list[dict[str, Any]]:
                    demos = pick_demos(self.task, self.splits["elicit"], k, seed, complete)
                    write_jsonl(folder / "demos.jsonl", [e.__dict__ for e in demos])
                    model = self.trainable(copy.deepcopy(locked), seed)
                    evals = elicit_sft(model, tokenizer, self.task, demos, self.val, epochs=epochs,
                                       args=args, max_new_tokens=self.cfg.eval.max_new_tokens,
                                       eval_batch_size=self.cfg.eval.batch_size, generator=self.generator)
                    for e, ev in evals.items():
                        self.save_completions(folder / f"completions_{e}_epochs.jsonl", ev)
                    return [row(**self.base, policy="elicited", lock_method=method, weak_policy=weak, elicitation="sft",
                                demo_source=ecfg.source, k=k, epochs=e, seed=seed, with_password=False,
                                correctness=ev.correctness, n=ev.n) for e, ev in sorted(evals.items())]

                _, unit_rows = self.store.run(f"elicit_sft_{name}_k{k}_s{seed}", key, compute)
                log(f"elicit sft ({name}) k={k} seed={seed}: "
                    + ", ".join(f"{r['epochs']} epochs {r['correctness']:.3f}" for r in unit_rows))
                rows += unit_rows
        return rows

    def elicit_rl(self, method: str, weak: str, lock_dir: Path, locked: Any, tokenizer: Any) -> list[dict[str, Any]]:
        """Section 6: expert iteration, filtering, DPO and iterated DPO, one unit per (algorithm,
        lr, seed), each traced by correctness without password against completions generated."""
        rl = self.cfg.elicit.rl
        assert rl is not None
        rows: list[dict[str, Any]] = []
        for algo in rl.methods:
            is_dpo = algo in DPO_METHODS
            for lr in rl.dpo_lrs if is_dpo else [rl.lr]:
                for seed in rl.seeds:
                    key = {"locked": lock_dir.name, "weak": weak, "algo": algo, "lr": lr, "seed": seed,
                           "rl": rl.model_dump(include=DPO_FIELDS if is_dpo else EXPERT_ITERATION_FIELDS),
                           "eval": self.cfg.eval.model_dump()}
                    compute = functools.partial(self.rl_unit, method, weak, algo, lr, seed, locked, tokenizer)
                    _, unit_rows = self.store.run(f"elicit_{algo}_{lock_name(method, weak)}_lr{lr:g}_s{seed}",
                                                  key, compute)
                    log(f"{algo} ({lock_name(method, weak)}) lr={lr:g} seed={seed}: "
                        f"{unit_rows[0]['correctness']:.3f} -> {unit_rows[-1]['correctness']:.3f} "
                        f"after {unit_rows[-1]['samples']} samples")
                    rows += unit_rows
        return rows

    def rl_unit(self, method: str, weak: str, algo: str, lr: float, seed: int, locked: Any, tokenizer: Any,
                folder: Path) -> list[dict[str, Any]]:
        """One RL elicitation run from a copy of the locked model."""
        rl = self.cfg.elicit.rl
        assert rl is not None
        model = self.trainable(copy.deepcopy(locked), seed)
        gen = dict(max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size)

        def evaluate_now() -> Evaluation:
            return evaluate(model, tokenizer, self.task, self.val, password=None, generator=self.generator, **gen)

        def rewards(problems: Any, completions: Any) -> list[float]:
            if rl.reward == "continuous":
                return reward_all(self.task, problems, completions)
            return [float(s) for s in score_all(self.task, problems, completions)]

        if algo in DPO_METHODS:
            args = TrainArgs(epochs=1, batch_size=rl.dpo_batch_size, lr=lr, optimizer=rl.optimizer, seed=seed)
            problems = random.Random(seed).sample(self.splits["elicit"], rl.dpo_problems)
            trace = dpo(model, tokenizer, self.task, problems, epochs=rl.dpo_epochs, iterated=algo == "iterated_dpo",
                        beta=rl.beta, args=args, rewards=rewards, max_new_tokens=gen["max_new_tokens"],
                        temperature=rl.temperature, gen_batch_size=gen["batch_size"], evaluate=evaluate_now,
                        seed=seed, generator=self.generator)
        else:
            rng = random.Random(f"candidates-{seed}")

            def candidates(problems: Any, r: int) -> list[str]:
                if algo == "filtering":  # pi_weak's samples, whatever the current model
                    return self.sample_policy(weak, problems, rng, temperature=rl.temperature)
                prompts = [self.task.prompt(p, None) for p in problems]
                return self.generator(model, tokenizer, prompts, temperature=rl.temperature,
                                      seed=rng.randrange(2**31), desc=f"sample {r + 1}", **gen)

            args = TrainArgs(epochs=rl.epochs_per_round, batch_size=rl.batch_size, lr=lr, optimizer=rl.optimizer,
                             seed=seed)
            trace = expert_iteration(model, tokenizer, self.task, self.splits["elicit"], rounds=rl.rounds, n=rl.n,
                                     candidates=candidates, rewards=rewards, args=args, evaluate=evaluate_now,
                                     eval_every=rl.eval_every, seed=seed)
        self.save_completions(folder / "completions_final.jsonl", trace[-1][1])
        return [row(**self.base, policy="elicited", lock_method=method, weak_policy=weak, elicitation=algo,
                    reward=rl.reward, lr=lr, samples=samples, seed=seed, with_password=False,
                    correctness=ev.correctness, n=ev.n) for samples, ev in trace]

    def save_completions(self, path: Path, ev: Evaluation) -> None:
        """One line per validation problem: its id and the model's completion."""
        write_jsonl(path, [{"id": p.id, "completion": c} for p, c in zip(self.val, ev.completions)])
