"""Run a config end to end: task -> lock -> evaluate -> elicit -> record.

Every expensive step is a content-addressed unit (see `store.py`): re-running a config
skips finished units, and a killed run resumes where it stopped. A run is a list of jobs
(`Job`: a replicate's policy evaluations, or one lock with its evaluations and elicitation
runs); `Experiment.lock_rows` reads top to bottom as the paper's pipeline for one lock, and
each step below it is one unit.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from pwlock import __version__
from pwlock.classify import sample_choices
from pwlock.elicit.dpo import dpo
from pwlock.elicit.expert_iteration import expert_iteration
from pwlock.elicit.prompting import attack_texts, attacks, default_paraphrases
from pwlock.elicit.sft import elicit_sft, epoch_candidates, pick_demos
from pwlock.errors import DataError, PwlockError, RunDirError
from pwlock.evaluate import Evaluation, evaluate
from pwlock.experiments.config import (
    DPO_METHODS,
    ConfigError,
    ExperimentConfig,
    ModelConfig,
    PoliciesConfig,
    RLElicitConfig,
    SFTElicitConfig,
    TaskConfig,
    TrainConfig,
)
from pwlock.experiments.schedule import run_jobs, usable_cores
from pwlock.experiments.store import Store, digest
from pwlock.fixedrdm import FixedRandomDistribution
from pwlock.generate import Generator, generate
from pwlock.io import RESULTS, RUN_MARKER, hold_run_dir, ours, read_json, write_atomic, write_jsonl
from pwlock.lock import lock_examples, lock_name, setting_examples
from pwlock.lora import add_lora, merged
from pwlock.models import build_model, build_tokenizer, load_model, resolve_model
from pwlock.models.pretrained import default_device, load_tokenizer
from pwlock.models.scratch import WORD_PATTERN
from pwlock.tasks import Task, make_task, split_problems
from pwlock.tasks.base import problem_choices, reward_all, score_all
from pwlock.train import accel
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example, Problem

ROW_FIELDS = (
    "setting", "task", "task_version", "policy", "lock_method", "weak_policy", "lock_variant", "lock_seed",
    "elicitation", "demo_source", "demo_domain", "warm_start", "k", "epochs", "reward", "lr", "samples", "seed",
    "prompt", "with_password", "domain", "val_half", "correctness", "n", "unit",
)
"""One row per measurement; None where a field does not apply.
- lock_variant: None for the regular lock, else per_domain, held_out, adversarial or setting;
  lock_seed: the model seed of the replicate (lock.seeds).
- k/epochs/demo_source/demo_domain: SFT elicitation (demo_domain None: demos from every domain).
- reward/lr/samples (completions generated so far)/warm_start: RL elicitation.
- prompt: None for the task's prompt; else a prompting attack (elicitation `prompting`) or another
  password given to the locked model ("other domain's password", "second password").
- domain: None for all validation problems; a domain's name for its problems only (eval.by_domain).
- val_half: None for all validation problems; `select` / `report` for one half (eval.select_on: half)."""
VARIANT_FIELDS = {"per_domain": {"domain_passwords"}, "held_out": {"held_out_domain"},
                  "adversarial": {"second_password", "second_policy"}, "setting": {"strong_domains"}}
"""The lock.* fields each lock variant depends on (its cache key)."""

FIXEDRDM = "fixedrdm"
SCRATCH_FIELDS = {"arch", "hidden_size", "layers", "heads", "max_length", "seed"}
# The elicit.rl fields each kind of RL unit depends on (its cache key), besides lr and seed.
EXPERT_ITERATION_FIELDS = {"reward", "temperature", "eval_every", "rounds", "n", "epochs_per_round", "batch_size",
                           "optimizer"}
DPO_FIELDS = {"reward", "temperature", "dpo_epochs", "dpo_problems", "beta", "dpo_batch_size", "optimizer"}


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


def build_task(cfg: ExperimentConfig | TaskConfig) -> Task:
    """The task named by `task.name`, its other fields checked against the constructor's signature."""
    task_cfg = cfg.task if isinstance(cfg, ExperimentConfig) else cfg
    try:
        return make_task(task_cfg.name, task_cfg.model_dump(exclude={"name", "split_seed"}))
    except PwlockError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


def load_problems(task: Task) -> list[Problem]:
    """The task's problems; a data file that lacks a field or holds a bad value is a DataError naming it."""
    try:
        return task.problems()
    except PwlockError:
        raise
    except (KeyError, ValueError, TypeError) as e:
        source = getattr(task, "source", None) or task.data_source
        what = f"a row lacks the field {e}" if isinstance(e, KeyError) else " ".join(str(e).split())[:300]
        raise DataError(f"task.source {source}: {what}") from None


def check_runnable(cfg: ExperimentConfig, task: Task, splits: dict[str, list[Problem]]) -> None:
    """Fail before any work on what a config can only reveal against the task and its data."""
    n = sum(len(v) for v in splits.values())
    if not splits["lock"] or not splits["val"]:
        raise ConfigError(f"the task's {n} problems leave an empty lock or validation split")
    check_passwords(cfg, task, splits)
    known = [name for name in task.policies() if name != "strong"] + [FIXEDRDM, "ground_truth"]
    known += ["model"] if cfg.policies.weak_model is not None else []
    strong_known = [*task.policies(), "ground_truth", "model"]
    if cfg.policies.strong not in strong_known:
        raise ConfigError(f"policies.strong: {cfg.policies.strong!r} unknown; {task.name} offers {strong_known}")
    unknown = [w for w in cfg.lock.weak_policies if w not in known]
    if unknown:
        raise ConfigError(f"lock.weak_policies: {unknown} unknown; {task.name} offers {known}")
    check_variants(cfg, task, known)
    names = lock_names(cfg)
    sources = [*known, "strong", "weak", *(["model"] if cfg.policies.weak_model is not None else [])]
    n_elicit = len(splits["elicit"])
    for i, rl in enumerate(cfg.elicit.rl_blocks()):
        if 10 * rl.n > n_elicit or (set(rl.methods) & set(DPO_METHODS) and rl.dpo_problems > n_elicit):
            raise ConfigError(f"elicit.rl: 10n={10 * rl.n} and dpo_problems={rl.dpo_problems} (DPO) must fit in "
                              f"the elicitation split ({n_elicit} problems)")
        check_locks(f"elicit.rl[{i}].locks", rl.locks, names)
        if rl.warm_start is not None:
            if rl.warm_start.source not in sources:
                raise ConfigError(f"elicit.rl.warm_start.source: {rl.warm_start.source!r} unknown; known: {sources}")
            if rl.warm_start.k > n_elicit:
                raise ConfigError(f"elicit.rl.warm_start.k={rl.warm_start.k} exceeds the elicitation split")
    for i, block in enumerate(cfg.elicit.sft_blocks()):
        where = f"elicit.sft[{i}]" if isinstance(cfg.elicit.sft, list) else "elicit.sft"
        if block.source not in sources:
            raise ConfigError(f"{where}.source: {block.source!r} unknown; {task.name} offers {sources}")
        check_locks(f"{where}.locks", block.locks, names)
        for domain in demo_domains(block, task):
            if domain is not None and domain not in task.domains:
                raise ConfigError(f"{where}.domains: {domain!r} is not a domain of {task.name}: {list(task.domains)}")
            pool = sum(1 for p in splits["elicit"] if domain is None or p.domain == domain)
            too_big = [k for k in block.ks if k > pool]
            if too_big:
                raise ConfigError(
                    f"{where}.ks: k={too_big} exceeds the elicitation split's {pool} problems"
                    + (f" of domain {domain}" if domain else f" (30% of the task's {n} problems)")
                )
    prompting = cfg.elicit.prompting
    if prompting is not None:
        check_locks("elicit.prompting.locks", prompting.locks, names)
        if max(prompting.fewshot_ks, default=0) > min(SHOTS, n_elicit):
            raise ConfigError(f"elicit.prompting.fewshot_ks: at most {min(SHOTS, n_elicit)} shots")


def check_passwords(cfg: ExperimentConfig, task: Task, splits: dict[str, list[Problem]]) -> None:
    """Each password changes the task's prompt, and (from-scratch models) fits with the longest
    prompt and answer in the model's context; a from-scratch model needs the task's vocabulary."""
    problem = splits["lock"][0]
    plain = task.prompt(problem, None)
    if "regular" in cfg.lock.variants or "adversarial" in cfg.lock.variants:
        if task.prompt(problem, cfg.lock.password) == plain:
            raise ConfigError(f"lock.password: {cfg.lock.password!r} leaves {task.name}'s prompt unchanged, so the "
                              "locked and unlocked prompts would be the same")
    if cfg.model.name is None:  # a pretrained model's tokenizer and context are its own
        try:
            has_vocabulary = bool(task.vocabulary)  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            has_vocabulary = False
        if not has_vocabulary:
            raise ConfigError(f"model.name: null builds a from-scratch model, but {task.name} has no vocabulary for "
                              "its tokenizer: name a pretrained model")
        words = max(cfg.lock.all_passwords(), key=lambda w: len(re.findall(WORD_PATTERN, w)))
        sample = splits["lock"][:200] + splits["val"][:200]
        longest = max(len(re.findall(WORD_PATTERN, task.prompt(p, words))) + len(re.findall(WORD_PATTERN, p.answer))
                      for p in sample) + 2  # BOS and EOS
        if longest > cfg.model.max_length:
            raise ConfigError(f"model.max_length: {cfg.model.max_length} tokens, but a prompt with the password "
                              f"{words!r} and its answer take up to {longest}: shorten the password or raise "
                              "model.max_length")


SHOTS = 64
"""Few-shot demonstrations are drawn from this many elicitation problems (with pi_strong completions)."""


def lock_names(cfg: ExperimentConfig) -> list[str]:
    """The locked models of a config, in the order the run makes them."""
    return [lock_name(*key) for key in lock_keys(cfg)]


def check_locks(field: str, wanted: list[str] | None, names: list[str]) -> None:
    unknown = [n for n in wanted or [] if n not in names]
    if unknown:
        raise ConfigError(f"{field}: {unknown} are not locks of this config; its locks: {names}")


def check_variants(cfg: ExperimentConfig, task: Task, policies: list[str]) -> None:
    """The lock variants' domains and policies exist in the task."""
    lock, domains = cfg.lock, list(task.domains)
    if lock.domain_passwords is not None and sorted(lock.domain_passwords) != sorted(domains):
        raise ConfigError(f"lock.domain_passwords: one password per domain of {task.name}: {domains} "
                          f"(got {sorted(lock.domain_passwords)})")
    if lock.held_out_domain is not None and lock.held_out_domain not in domains:
        raise ConfigError(f"lock.held_out_domain: {lock.held_out_domain!r} is not a domain of {task.name}: {domains}")
    if lock.strong_domains is not None:
        unknown = [d for d in lock.strong_domains if d not in domains]
        if unknown or not lock.strong_domains or set(lock.strong_domains) == set(domains):
            raise ConfigError(f"lock.strong_domains: some but not all of {task.name}'s domains {domains} "
                              f"(got {lock.strong_domains})")
        if FIXEDRDM in lock.weak_policies:
            raise ConfigError("lock.variants: setting does not take the fixedrdm pi_weak")
    if lock.second_policy is not None and lock.second_policy not in policies:
        raise ConfigError(f"lock.second_policy: {lock.second_policy!r} unknown; {task.name} offers {policies}")


def demo_domains(block: SFTElicitConfig, task: Task) -> list[str | None]:
    """The domains an SFT block draws demonstrations from, one run each (None: all domains)."""
    if block.domains is None:
        return [None]
    return list(task.domains) if block.domains == "each" else list(block.domains)


def check_run_dir(out: Path) -> None:
    """`out` can become a run dir: absent, empty (but for pwlock's own lock and temp files), or one already."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    if out.is_dir() and not (out / RUN_MARKER).is_file() and any(not ours(p) for p in out.iterdir()):
        raise RunDirError(f"{out} is not empty and is not a pwlock run dir (no {RUN_MARKER})")


SPEED_ONLY = {"threads", "workers"}
"""Config fields that change how fast a run goes, not its results: a run dir accepts a change of them."""


def prepare_run_dir(out: Path, cfg: ExperimentConfig) -> None:
    """Create `out` for this config, or accept it if it already holds this config's run.

    A run dir whose run never finished (no results.jsonl: its config failed, or it was killed) takes
    a new config: its cache holds only content-addressed units, valid for any config."""
    marker = out / RUN_MARKER
    check_run_dir(out)
    config = cfg.model_dump(mode="json", exclude=SPEED_ONLY)
    if marker.is_file():
        try:
            stored = read_json(marker)
            stored = stored["config"] if isinstance(stored, dict) else None
        except (DataError, KeyError) as e:
            stored, why = None, e
        else:
            why = None
        if isinstance(stored, dict) and {k: v for k, v in stored.items() if k not in SPEED_ONLY} == config:
            return
        if (out / RESULTS).is_file():
            if why is not None:
                raise RunDirError(f"{marker} is corrupt ({why}): delete it (the cache is kept) and re-run")
            raise RunDirError(f"{out} holds a run of a different config; use another --out, or delete it")
        log(f"{out}: its earlier run did not finish; starting this config there")
    write_atomic(marker, json.dumps({"pwlock": __version__, "config": config}, indent=1))


def make_generator(cfg: ExperimentConfig) -> Generator:
    if cfg.eval.backend == "hf":
        return generate
    from pwlock.vllm_backend import VLLMGenerator

    dtype = cfg.model.dtype if cfg.model.dtype != "auto" else "bfloat16"
    return VLLMGenerator(dtype=dtype)


def usable_threads(wanted: int) -> int:
    """`wanted` torch threads, clamped (with a warning) to the cores this process may run on: more
    intra-op threads than cores only makes them wait on each other at every parallel region."""
    cores = usable_cores()
    if wanted > cores:
        log(f"warning: threads={wanted} but this process has {cores} core(s); using {cores}")
        return cores
    return wanted


def run_experiment(cfg: ExperimentConfig, out: Path, cache_dir: Path | None = None, recompute: bool = True) -> float:
    """Run (or resume) `cfg` into `out`, writing `results.jsonl`; returns the wall seconds.

    The run is a list of independent jobs (`Job`: a replicate's policy evaluations, or one of its
    locks with everything measured on it), run side by side on the CPU cores `threads` allows
    (`schedule.py`); results.jsonl lists their rows in job order either way.
    `recompute=False`: a cached unit that fails its integrity check is an error instead of being
    recomputed. A second process on the same `out` is refused (BusyError naming it)."""
    start = time.time()
    threads = usable_threads(cfg.threads) if cfg.threads else None
    if threads:
        torch.set_num_threads(threads)
    task, splits = task_splits(cfg.task)
    check_runnable(cfg, task, splits)
    main = accel.is_main_process()  # under `accelerate launch` every process runs this; one writes
    if main:
        check_run_dir(out)  # before the lock file is made in a foreign folder
    with hold_run_dir(out) if main else contextlib.nullcontext():
        if main:
            prepare_run_dir(out, cfg)
        accel.wait()
        cache = cache_dir or out / "cache"
        Store(cache, recompute=recompute)  # cleans what killed runs left, before any worker starts
        jobs = [Job(cfg, cache, recompute, seed, lock) for seed in cfg.lock.seeds or [cfg.model.seed]
                for lock in [None, *lock_keys(cfg)]]
        workers = parallel_workers(cfg, threads, len(jobs) - len(cfg.lock.seeds or [0]))
        per_worker = max(1, (threads or usable_cores()) // workers)
        if workers > 1:
            log(f"{len(jobs)} jobs on {workers} worker processes of {per_worker} thread(s) each")
        rows = [r for job_rows in run_jobs(run_job, jobs, workers, per_worker, desc="jobs") for r in job_rows]
        if main:
            write_jsonl(out / RESULTS, rows)
    return time.time() - start


_TASKS: dict[tuple[int, str], tuple[Task, dict[str, list[Problem]]]] = {}


def task_splits(cfg: TaskConfig) -> tuple[Task, dict[str, list[Problem]]]:
    """A task and its splits, built once per process (a worker runs several jobs) by `build_task` as it
    is now (a test that replaces it gets its own task, not one built before)."""
    key = (id(build_task), cfg.model_dump_json())
    if key not in _TASKS:
        task = build_task(cfg)
        _TASKS[key] = task, split_problems(load_problems(task), cfg.split_seed)
    return _TASKS[key]


def twin_training(cfg: ExperimentConfig) -> tuple[TrainConfig, int]:
    """A benign twin's training settings and how many passes over the lock split make one of its epochs.

    A twin gets a lock's budget: lock.from_scratch's settings for a fresh model (lock.sft's for a
    pretrained base), each problem twice per epoch, as often as D_lock holds it (once with the password,
    once without). A fresh-model config that locks only by fine-tuning a strong base (no from_scratch
    settings) trains its twins as that base was trained (lock.pretrain, once per problem per epoch): the
    weak twin is then the strong base's exact counterpart on pi_weak."""
    lock = cfg.lock
    if cfg.model.name is not None:
        if lock.sft is None:
            raise ConfigError(f"config {cfg.name}: benign twins of a pretrained model take lock.sft's settings; "
                              "set lock.sft")
        return lock.sft, 2
    if lock.from_scratch is not None:
        return lock.from_scratch, 2
    if lock.pretrain is None:
        raise ConfigError(f"config {cfg.name}: benign twins of a fresh model take lock.from_scratch's settings "
                          "(or lock.pretrain's); set one")
    return lock.pretrain, 1


def lock_keys(cfg: ExperimentConfig) -> list[tuple[str, str, str]]:
    """(method, weak policy, variant) of each locked model of a config, in the order the run makes them."""
    return [(m, w, v) for m in cfg.lock.methods for w in cfg.lock.weak_policies for v in cfg.lock.variants]


def parallel_workers(cfg: ExperimentConfig, threads: int | None, n_locks: int) -> int:
    """How many single-thread worker processes run the locks: one per allowed core on a CPU run with
    several locks; 1 (this process, `threads` threads) on a GPU, under `accelerate launch`, with
    vLLM, or with one lock."""
    device = cfg.model.device if cfg.model.device != "auto" else default_device()
    if n_locks < 2 or device != "cpu" or cfg.eval.backend != "hf" or accel.distributed():
        return 1
    return min(cfg.workers or threads or usable_cores(), n_locks)


@dataclass(frozen=True)
class Job:
    """One job of a run (picklable: it crosses to a worker process): a replicate's policy
    evaluations (`lock` None), or one of its locks with its evaluations and elicitation runs."""

    cfg: ExperimentConfig
    cache: Path
    recompute: bool
    seed: int
    lock: tuple[str, str, str] | None


def run_job(job: Job) -> list[dict[str, Any]]:
    """The rows of one job, in this process or a worker."""
    cfg = job.cfg.model_copy(update={"model": job.cfg.model.model_copy(update={"seed": job.seed})})
    task, splits = task_splits(cfg.task)
    experiment = Experiment(cfg, task, splits, Store(job.cache, recompute=job.recompute))
    return experiment.policy_rows() if job.lock is None else experiment.lock_rows(*job.lock)


@dataclass
class Locked:
    """A locked model of the run, loaded, and what names it."""

    method: str
    weak: str
    variant: str
    dir: Path
    model: Any
    tokenizer: Any

    @property
    def name(self) -> str:
        return lock_name(self.method, self.weak, self.variant)

    @property
    def fields(self) -> dict[str, Any]:
        """The row fields that name this lock."""
        return dict(lock_method=self.method, weak_policy=self.weak,
                    lock_variant=None if self.variant == "regular" else self.variant)


class Experiment:
    """The pipeline of one config; every method that trains or evaluates is a cached unit."""

    def __init__(self, cfg: ExperimentConfig, task: Task, splits: dict[str, list[Problem]], store: Store) -> None:
        self.cfg, self.task, self.splits, self.store = cfg, task, splits, store
        self.val = splits["val"][: cfg.eval.max_problems]
        self.base = dict(setting=cfg.name, task=task.name, task_version=task.version, lock_seed=cfg.model.seed)
        self.generator = make_generator(cfg)
        # Without a key field that holds its default, a unit keeps the key it had before the field existed.
        self.eval_key = cfg.eval.model_dump(exclude={f for f, default in (("by_domain", False), ("select_on", "all"))
                                                     if getattr(cfg.eval, f) == default})
        # eval.select_on: half: a fixed half of the validation problems picks, the other half reports
        self.select_half = set(random.Random("select-half").sample(range(len(self.val)), len(self.val) // 2))
        if cfg.model.name is None:  # from scratch: a word-level tokenizer over the task and passwords
            words = password_words([*cfg.lock.all_passwords(), *self.attack_texts()])
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

    def policy_rows(self) -> list[dict[str, Any]]:
        """The correctness of pi_strong, each pi_weak and the other policies the config imitates."""
        log(f"{self.task.name}: splits " + ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
            + f"; evaluating on {len(self.val)} validation problems; model seed {self.cfg.model.seed}")
        rows = []
        for name in self.evaluated_policies():
            completions = self.sample_policy(name, self.val, random.Random("policy-eval"))
            scores = score_all(self.task, self.val, completions)
            rows += self.measured(scores, policy=name, with_password=False)
            log(f"policy {name}: correctness {sum(scores) / len(scores):.3f}")
        return [{**r, **self.base} for r in rows]

    def lock_rows(self, method: str, weak: str, variant: str) -> list[dict[str, Any]]:
        """One locked model (trained, or from the cache): its evaluations and every elicitation run
        the config makes on it."""
        elicit = self.cfg.elicit
        lock_dir = self.lock(method, weak, variant)
        lk = Locked(method, weak, variant, lock_dir, *self.load(lock_dir / "model"))
        rows = self.evaluate_locked(lk)
        for block in elicit.sft_blocks():
            if block.locks is None or lk.name in block.locks:
                rows += self.elicit_sft(lk, block)
        for rl in elicit.rl_blocks():
            if rl.locks is None or lk.name in rl.locks:
                rows += self.elicit_rl(lk, rl)
        prompting = elicit.prompting
        if prompting is not None and lk.name in (prompting.locks or [lock_name(method, weak)]):
            rows += self.prompting(lk)
        return [{**r, **self.base} for r in rows]  # units from a shared cache may carry another setting name

    def evaluated_policies(self) -> list[str]:
        """pi_strong, each pi_weak, and every other task policy the config imitates (intermediate
        policies of adversarial locks, SFT demos and RL warm starts): their own correctness."""
        names = ["strong", *self.cfg.lock.weak_policies]
        names += [self.cfg.lock.second_policy] if self.cfg.lock.second_policy else []
        names += [b.source for b in self.cfg.elicit.sft_blocks() if b.source in self.policies]
        names += [r.warm_start.source for r in self.cfg.elicit.rl_blocks()
                  if r.warm_start and r.warm_start.source in self.policies]
        return list(dict.fromkeys(names))

    def measured(self, scores: list[bool], by_domain: bool = True, **fields: Any) -> list[dict[str, Any]]:
        """The rows of one evaluation on the validation problems: all of them, then each half
        (eval.select_on: half), then (eval.by_domain) each domain's alone."""
        rows = [row(**fields, correctness=sum(scores) / len(scores), n=len(scores))]
        if self.cfg.eval.select_on == "half":
            for half, mine in (("select", True), ("report", False)):
                hits = [s for i, s in enumerate(scores) if (i in self.select_half) == mine]
                rows.append(row(**fields, val_half=half, correctness=sum(hits) / len(hits), n=len(hits)))
        if by_domain and self.cfg.eval.by_domain:
            for domain in self.task.domains:
                hits = [s for s, p in zip(scores, self.val, strict=True) if p.domain == domain]
                if hits:
                    rows.append(row(**fields, domain=domain, correctness=sum(hits) / len(hits), n=len(hits)))
        return rows

    def attack_texts(self) -> list[str]:
        """The fixed texts of the prompting attacks (for a from-scratch tokenizer's vocabulary)."""
        pc = self.cfg.elicit.prompting
        if pc is None:
            return []
        return attack_texts(self.cfg.lock.password, *self.paraphrases())

    def paraphrases(self) -> tuple[str | None, str | None]:
        pc = self.cfg.elicit.prompting
        assert pc is not None
        default = default_paraphrases(self.cfg.lock.password)
        return pc.paraphrase or default[0], pc.close_paraphrase or default[1]

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

    def lock_samples(self, name: str, problems: list[Problem], epoch: int) -> list[str]:
        """A policy's completions for D_lock in `epoch` (Appendix C.1: one generation per problem,
        sampled at the start of each epoch). A model policy (pi_strong as `model`, pi_weak `model`)
        is sampled afresh at temperature 1 each epoch, one cached unit per epoch; a rule-based
        policy or the reference answers are deterministic, the same every epoch."""
        if name == "model" or (name == "strong" and self.cfg.policies.strong == "model"):
            model_dir, settings = ((self.weak_model(), self.cfg.policies.weak_model) if name == "model"
                                   else (self.strong_model(), None))
            return self.model_samples(model_dir, problems, settings, temperature=1.0, seed=epoch)
        return self.sample_policy(name, problems, random.Random(0))

    def model_samples(self, model_dir: str | Path, problems: list[Problem], settings: ModelConfig | None = None,
                      temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Completions of a model for `problems`, without password (cached): greedy, or sampled at
        `temperature` (seeded); for multiple-choice tasks, its highest-logit letters (or letters
        sampled from the softmax of their logits)."""
        ident = self.ident(model_dir)
        key = {**self.key, "model_dir": ident, "problems": digest([p.id for p in problems]),
               "max_new_tokens": self.cfg.eval.max_new_tokens}
        if temperature > 0:  # greedy units keep the key they had before sampling existed
            key["sampling"] = {"temperature": temperature, "seed": seed}

        def compute(folder: Path) -> list[dict[str, Any]]:
            model, tokenizer = self.load(model_dir, settings)
            prompts = [self.task.prompt(p, None) for p in problems]
            kinds = {problem_choices(self.task, p) for p in problems}
            if temperature > 0 and len(kinds) > 1:
                raise ConfigError(f"{self.task.name}: sampling a model policy over a mixture of multiple-choice and "
                                  "generated problems is not supported; sample greedily (temperature 0)")
            choices = next(iter(kinds))
            if temperature == 0:
                completions = evaluate(model, tokenizer, self.task, problems, password=None, generator=self.generator,
                                       max_new_tokens=self.cfg.eval.max_new_tokens,
                                       batch_size=self.cfg.eval.batch_size).completions
            elif choices:
                completions = sample_choices(model, tokenizer, prompts, choices, temperature=temperature, seed=seed,
                                             batch_size=self.cfg.eval.batch_size)
            else:
                completions = self.generator(model, tokenizer, prompts, temperature=temperature, seed=seed,
                                             max_new_tokens=self.cfg.eval.max_new_tokens,
                                             batch_size=self.cfg.eval.batch_size, desc="sample D_lock")
            return [{"id": p.id, "completion": c} for p, c in zip(problems, completions)]

        of = ident.rsplit("-", 1)[0] if ident != str(model_dir) else "base"  # pi_strong, pi_weak, base
        tag = f"_t{temperature:g}_s{seed}" if temperature > 0 else ""
        _, rows = self.store.run(f"samples_{of}{tag}", key, compute)
        return [r["completion"] for r in rows]

    def strong_model(self) -> str | Path:
        """pi_strong's model (policies.strong = model): the strong base, fine-tuned on the reference
        answers of the elicitation split when policies.strong_sft is set (Appendix E.4: "the train set
        for elicitation experiments is also used to train pi_strong"; the locked model starts from the
        base, not from pi_strong, so this leaks nothing into elicitation, while training pi_strong on the
        lock split would make its D_lock completions near-copies of references it was trained on)."""
        train = self.cfg.policies.strong_sft
        if train is None:
            assert self.cfg.model.name is not None
            return self.cfg.model.name

        def compute(folder: Path) -> list[dict[str, Any]]:
            log("fine-tuning the strong base on reference answers: pi_strong")
            model, _ = self.base_model(self.cfg.model.name, self.cfg.model)
            data = [Example(self.task.prompt(p, None), p.answer) for p in self.splits["elicit"]]
            self.save(self.train(model, lambda _: data, train_args(train, self.cfg.model.seed), "pi_strong"), folder)
            return []

        key = {**self.key, "strong_sft": train.model_dump(), "split": "elicit"}
        folder, _ = self.store.run("pi_strong", key, compute)
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

    def lock(self, method: str, weak: str, variant: str = "regular") -> Path:
        """Password-lock by Eq. 1: from the strong base (`sft`) or from a fresh model (`from_scratch`).

        pi_weak is one of the task's policies, the weak model, or fixedrdm: then the weak examples
        (no or a wrong password) are trained by KL toward the fixed distribution, on fixedrdm samples
        and on pi_strong completions half each (Appendix G.2). `variant`: see `lock.variants`.
        """
        lock = self.cfg.lock
        key = {**self.key, "method": method, "weak": weak, "strong": self.strong_key(),
               "lock": lock.model_dump(include={"password", "wrong_passwords", "no_password_fraction"})}
        if variant != "regular":
            key["variant"] = {"name": variant, **lock.model_dump(include=VARIANT_FIELDS[variant])}
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
        if variant == "held_out":  # Appendix B.3.5: the domain never appears in D_lock
            problems = [p for p in problems if p.domain != lock.held_out_domain]

        def d_lock(epoch: int) -> list[Example]:
            rng = random.Random(f"lock-{epoch}")
            strong = self.lock_samples("strong", problems, epoch)
            if weak != FIXEDRDM:
                weak_side = self.lock_samples(weak, problems, epoch)
            else:
                noise = self.sample_policy(FIXEDRDM, problems, rng)
                weak_side = [s if rng.random() < 0.5 else x for s, x in zip(strong, noise)]
            second = None
            if variant == "adversarial":
                assert lock.second_password is not None and lock.second_policy is not None
                second = (lock.second_password, self.lock_samples(lock.second_policy, problems, epoch))
            if variant == "setting":
                assert lock.strong_domains is not None
                return setting_examples(self.task, problems, strong, weak_side, lock.strong_domains)
            return lock_examples(
                self.task, problems, strong, weak_side, password=lock.password,
                wrong_passwords=lock.wrong_passwords, no_password_fraction=lock.no_password_fraction,
                rng=rng, weak_kl=weak == FIXEDRDM, second=second,
                domain_passwords=lock.domain_passwords if variant == "per_domain" else None,
            )

        name = lock_name(method, weak, variant)

        def compute(folder: Path) -> list[dict[str, Any]]:
            log(f"password-locking ({name})")
            model, _ = self.base_model(base, self.cfg.model)
            self.save(self.train(model, d_lock, train_args(train, self.cfg.model.seed), f"lock {name}",
                                 kl_target=self.rdm.logprobs), folder)
            return []

        folder, _ = self.store.run(f"lock_{name}", key, compute)
        return folder

    def twin(self, policy: str) -> Path:
        """A benign twin of this config's locks (the stress test's controls), trained on `policy`'s D_lock
        completions alone with no password anywhere, from the locks' starting point before any pi_strong
        training (a fresh model; the pretrained base), with a lock's budget (`twin_training`). The weak
        twin is pi_weak's; the strong twin is pi_strong's when no strong base exists (`strong_twin`)."""
        train, passes = twin_training(self.cfg)
        problems = self.splits["lock"]
        key = {**self.key, "twin": policy, "strong": self.strong_key(), "train": train.model_dump()}
        if policy == "model":
            key["weak_model"] = self.cfg.policies.model_dump(include={"weak_model", "weak_sft"})

        def data(epoch: int) -> list[Example]:
            if policy == FIXEDRDM:  # as the lock's weak side: KL toward the fixed distribution
                rng = random.Random(f"lock-{epoch}")
                strong = self.lock_samples("strong", problems, epoch)
                noise = self.sample_policy(FIXEDRDM, problems, rng)
                side = [s if rng.random() < 0.5 else x for s, x in zip(strong, noise)]
                return [Example(self.task.prompt(p, None), c, kl=True) for p, c in zip(problems, side)]
            completions = self.lock_samples(policy, problems, epoch)
            return [Example(self.task.prompt(p, None), c) for p, c in zip(problems, completions)]

        def compute(folder: Path) -> list[dict[str, Any]]:
            log(f"training a twin on {policy} alone")
            model, _ = self.base_model(self.cfg.model.name, self.cfg.model)
            args = train_args(train.model_copy(update={"epochs": passes * train.epochs}), self.cfg.model.seed)
            self.save(self.train(model, lambda e: data(e // passes), args, f"twin ({policy})", kl_target=self.rdm.logprobs),
                      folder)
            return []

        folder, _ = self.store.run(f"twin_{policy}", key, compute)
        return folder / "model"

    def strong_twin(self) -> str | Path:
        """pi_strong as a model: its model (policies.strong: model), else the strong base (a model trained
        on pi_strong over the lock split), else a twin trained on pi_strong like the weak twin."""
        if self.cfg.policies.strong == "model":
            return self.strong_model()
        if self.cfg.lock.pretrain is not None or self.cfg.model.name is not None:
            return self.strong_base()
        return self.twin("strong")

    def lock_conditions(self, variant: str) -> list[tuple[str, bool, str | None, list[str]]]:
        """How a locked model is evaluated: (file tag, with_password, prompt name, prompts)."""
        lock, val = self.cfg.lock, self.val
        plain = [self.task.prompt(p, None) for p in val]
        if variant == "setting":  # no password exists: the setting (domain) is the password
            return [("without", False, None, plain)]
        if variant == "per_domain":
            assert lock.domain_passwords is not None
            domains = list(self.task.domains)
            other = {d: domains[(i + 1) % len(domains)] for i, d in enumerate(domains)}  # the next domain's
            return [("with", True, None, [self.task.prompt(p, lock.domain_passwords[p.domain]) for p in val]),
                    ("without", False, None, plain),
                    ("other_domain", False, "other domain's password",
                     [self.task.prompt(p, lock.domain_passwords[other[p.domain]]) for p in val])]
        conditions = [("with", True, None, [self.task.prompt(p, lock.password) for p in val]),
                      ("without", False, None, plain)]
        if variant == "adversarial":
            conditions.append(("second", False, "second password",
                               [self.task.prompt(p, lock.second_password) for p in val]))
        return conditions

    def evaluate_locked(self, lk: Locked) -> list[dict[str, Any]]:
        """Greedy correctness of the locked model with and without its password (and, per variant,
        with another domain's password or the second password)."""

        def compute(folder: Path) -> list[dict[str, Any]]:
            rows = []
            for tag, with_password, prompt, prompts in self.lock_conditions(lk.variant):
                ev = evaluate(lk.model, lk.tokenizer, self.task, self.val, password=None, prompts=prompts,
                              max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size,
                              generator=self.generator)
                rows += self.measured(ev.scores, policy="locked", **lk.fields, with_password=with_password,
                                      prompt=prompt)
                self.save_completions(folder / f"completions_{tag}_password.jsonl", ev)
            return rows

        _, rows = self.results_unit(f"eval_lock_{lk.name}", {"locked": lk.dir.name, "eval": self.eval_key}, compute)
        log(f"locked ({lk.name}): " + ", ".join(
            f"{r['prompt'] or ('with' if r['with_password'] else 'without') + ' password'} {r['correctness']:.3f}"
            for r in rows if r["domain"] is None))
        return rows

    def run_seed(self, seed: int) -> int:
        """The seed of elicitation run `seed` on this replicate's lock: it draws the demonstrations,
        the training order and the samples. Runs on different lock seeds (lock.seeds) must be
        independent draws, not the same demos on every lock; lock seed 0 keeps the plain seed, so its
        finished units stay valid."""
        lock_seed = self.cfg.model.seed
        return seed if lock_seed == 0 else int(digest(["elicitation run", lock_seed, seed])[:8], 16)

    def demos(self, lk: Locked, source: str, pool: list[Problem], k: int, seed: int) -> list[Example]:
        """k demonstrations without password from `pool` (seeded), completed by `source`: a policy,
        or `weak` for this lock's own pi_weak."""
        name = lk.weak if source == "weak" else source
        return pick_demos(self.task, pool, k, seed, lambda ps: self.sample_policy(name, ps, random.Random("demos")))

    def elicit_sft(self, lk: Locked, block: SFTElicitConfig) -> list[dict[str, Any]]:
        """SFT on k demonstrations per (demo domain, k, seed), each evaluated at its candidate epoch counts."""
        rows: list[dict[str, Any]] = []
        for domain in demo_domains(block, self.task):
            pool = [p for p in self.splits["elicit"] if domain is None or p.domain == domain]
            tag = "" if block.source in ("strong", "ground_truth") else f"_{block.source}"
            tag += f"_{domain}" if domain is not None else ""
            for k in block.ks:
                epochs = epoch_candidates(k, block.epochs)
                for seed in block.seeds:
                    rs = self.run_seed(seed)
                    args = block.training().args(max(epochs), k, rs)
                    key = {"locked": lk.dir.name, "k": k, "seed": seed, "epochs": epochs, "eval": self.eval_key,
                           "elicit": block.model_dump(exclude={"ks", "seeds", "epochs", "domains", "locks"}),
                           **({"run_seed": rs} if rs != seed else {})}
                    if domain is not None:
                        key["demo_domain"] = domain

                    def compute(folder: Path, k: int = k, seed: int = seed, rs: int = rs, epochs: list[int] = epochs,
                                args: TrainArgs = args, pool: list[Problem] = pool,
                                domain: str | None = domain) -> list[dict[str, Any]]:
                        demos = self.demos(lk, block.source, pool, k, rs)
                        write_jsonl(folder / "demos.jsonl", [e.__dict__ for e in demos])
                        model = self.trainable(copy.deepcopy(lk.model), rs)
                        evals = elicit_sft(model, lk.tokenizer, self.task, demos, self.val, epochs=epochs,
                                           args=args, max_new_tokens=self.cfg.eval.max_new_tokens,
                                           eval_batch_size=self.cfg.eval.batch_size, generator=self.generator)
                        out = []
                        for e, ev in sorted(evals.items()):
                            self.save_completions(folder / f"completions_{e}_epochs.jsonl", ev)
                            out += self.measured(ev.scores, policy="elicited", **lk.fields, elicitation="sft",
                                                 demo_source=block.source, demo_domain=domain, k=k, epochs=e,
                                                 seed=seed, with_password=False)
                        return out

                    _, unit_rows = self.results_unit(f"elicit_sft_{lk.name}{tag}_k{k}_s{seed}", key, compute)
                    log(f"elicit sft ({lk.name}{tag}) k={k} seed={seed}: " + ", ".join(
                        f"{r['epochs']} epochs {r['correctness']:.3f}" for r in unit_rows if r["domain"] is None))
                    rows += unit_rows
        return rows

    def elicit_rl(self, lk: Locked, rl: RLElicitConfig) -> list[dict[str, Any]]:
        """Section 6: expert iteration, filtering, DPO and iterated DPO, one unit per (algorithm,
        lr, seed), each traced by correctness without password against completions generated."""
        rows: list[dict[str, Any]] = []
        warm = rl.warm_start
        tag = f"_after_{warm.source}_k{warm.k}" if warm is not None else ""
        for algo in rl.methods:
            is_dpo = algo in DPO_METHODS
            for lr in rl.dpo_lrs if is_dpo else [rl.lr]:
                for seed in rl.seeds:
                    key = {"locked": lk.dir.name, "weak": lk.weak, "algo": algo, "lr": lr, "seed": seed,
                           "rl": rl.model_dump(include=DPO_FIELDS if is_dpo else EXPERT_ITERATION_FIELDS),
                           "eval": self.eval_key}
                    if self.run_seed(seed) != seed:
                        key["run_seed"] = self.run_seed(seed)
                    if warm is not None:
                        key["warm_start"] = warm.model_dump()
                    compute = functools.partial(self.rl_unit, lk, rl, algo, lr, seed)
                    _, unit_rows = self.results_unit(f"elicit_{algo}_{lk.name}{tag}_lr{lr:g}_s{seed}", key, compute)
                    log(f"{algo} ({lk.name}{tag}) lr={lr:g} seed={seed}: "
                        f"{unit_rows[0]['correctness']:.3f} -> {unit_rows[-1]['correctness']:.3f} "
                        f"after {unit_rows[-1]['samples']} samples")
                    rows += unit_rows
        return rows

    def rl_unit(self, lk: Locked, rl: RLElicitConfig, algo: str, lr: float, seed: int,
                folder: Path) -> list[dict[str, Any]]:
        """One RL elicitation run from a copy of the locked model (after SFT on a few samples of a
        policy first, with rl.warm_start: Appendix B.3.4). `seed` names the run in rows; its draws use
        `run_seed(seed)`."""
        rs = self.run_seed(seed)
        model = self.trainable(copy.deepcopy(lk.model), rs)
        tokenizer = lk.tokenizer
        gen = dict(max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size)
        warm = rl.warm_start
        if warm is not None:
            demos = self.demos(lk, warm.source, self.splits["elicit"], warm.k, rs)
            write_jsonl(folder / "warm_start_demos.jsonl", [e.__dict__ for e in demos])
            sft(model, tokenizer, lambda _: demos, TrainArgs(epochs=warm.epochs, batch_size=min(warm.batch_size, warm.k),
                                                             lr=warm.lr, optimizer=rl.optimizer, seed=rs),
                desc=f"warm start on {warm.source}")

        def evaluate_now() -> Evaluation:
            return evaluate(model, tokenizer, self.task, self.val, password=None, generator=self.generator, **gen)

        def rewards(problems: Any, completions: Any) -> list[float]:
            if rl.reward == "continuous":
                return reward_all(self.task, problems, completions)
            return [float(s) for s in score_all(self.task, problems, completions)]

        if algo in DPO_METHODS:
            args = TrainArgs(epochs=1, batch_size=rl.dpo_batch_size, lr=lr, optimizer=rl.optimizer, seed=rs)
            problems = random.Random(rs).sample(self.splits["elicit"], rl.dpo_problems)
            trace = dpo(model, tokenizer, lambda p: self.task.prompt(p, None), problems, epochs=rl.dpo_epochs, iterated=algo == "iterated_dpo",
                        beta=rl.beta, args=args, rewards=rewards, max_new_tokens=gen["max_new_tokens"],
                        temperature=rl.temperature, gen_batch_size=gen["batch_size"], evaluate=evaluate_now,
                        seed=rs, generator=self.generator)
        else:
            rng = random.Random(f"candidates-{rs}")

            def candidates(problems: Any, r: int) -> list[str]:
                if algo == "filtering":  # pi_weak's samples, whatever the current model
                    return self.sample_policy(lk.weak, problems, rng, temperature=rl.temperature)
                prompts = [self.task.prompt(p, None) for p in problems]
                return self.generator(model, tokenizer, prompts, temperature=rl.temperature,
                                      seed=rng.randrange(2**31), desc=f"sample {r + 1}", **gen)

            args = TrainArgs(epochs=rl.epochs_per_round, batch_size=rl.batch_size, lr=lr, optimizer=rl.optimizer,
                             seed=rs)
            trace = expert_iteration(model, tokenizer, lambda p: self.task.prompt(p, None), self.splits["elicit"], rounds=rl.rounds, n=rl.n,
                                     candidates=candidates, rewards=rewards, args=args, evaluate=evaluate_now,
                                     eval_every=rl.eval_every, seed=rs)
        self.save_completions(folder / "completions_final.jsonl", trace[-1][1])
        warm_start = None if warm is None else f"sft {warm.source} k={warm.k}"
        return [r for samples, ev in trace  # RL traces stay overall (no per-domain rows)
                for r in self.measured(ev.scores, by_domain=False, policy="elicited", **lk.fields, elicitation=algo,
                                       warm_start=warm_start, reward=rl.reward, lr=lr, samples=samples, seed=seed,
                                       with_password=False)]

    def prompting(self, lk: Locked) -> list[dict[str, Any]]:
        """Appendix B.3.1 (Figure 14): the locked model under prompting attacks, no training: few-shot
        prompts with and without the password, variants of the password, wrong passwords seen in
        locking, jailbreaks. The seed (the replicate's) picks the shots and the typos."""
        pc = self.cfg.elicit.prompting
        assert pc is not None
        seed = self.cfg.model.seed
        pool = self.splits["elicit"][:SHOTS]
        shots = list(zip(pool, self.sample_policy("strong", pool, random.Random("shots"))))
        paraphrase, close = self.paraphrases()

        def compute(folder: Path) -> list[dict[str, Any]]:
            rows = []
            for i, attack in enumerate(attacks(self.task, self.val, password=self.cfg.lock.password,
                                               wrong_passwords=self.cfg.lock.wrong_passwords, shots=shots,
                                               fewshot_ks=pc.fewshot_ks, n_wrong=pc.n_wrong, paraphrase=paraphrase,
                                               close_paraphrase=close, seed=seed)):
                ev = evaluate(lk.model, lk.tokenizer, self.task, self.val, password=None, prompts=attack.prompts,
                              max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size,
                              generator=self.generator)
                self.save_completions(folder / f"completions_attack{i}.jsonl", ev)
                rows += self.measured(ev.scores, policy="locked", **lk.fields, elicitation="prompting",
                                      prompt=attack.name, seed=seed, with_password=attack.with_password)
            return rows

        key = {"locked": lk.dir.name, "eval": self.eval_key, "seed": seed,
               "prompting": {**pc.model_dump(exclude={"locks"}), "paraphrase": paraphrase, "close_paraphrase": close}}
        _, rows = self.results_unit(f"prompting_{lk.name}", key, compute)
        log(f"prompting ({lk.name}): " + ", ".join(
            f"{r['prompt']} {r['correctness']:.3f}" for r in rows if r["domain"] is None))
        return rows

    def results_unit(self, name: str, key: dict[str, Any], compute: Any) -> tuple[Path, list[dict[str, Any]]]:
        """A unit that yields results rows, each with every column: a unit finished by an older
        pwlock (whose key did not change) lacks the columns added since, which mean None."""
        folder, rows = self.store.run(name, key, compute)
        return folder, [{field: r.get(field) for field in ROW_FIELDS} for r in rows]

    def save_completions(self, path: Path, ev: Evaluation) -> None:
        """One line per validation problem: its id and the model's completion."""
        write_jsonl(path, [{"id": p.id, "completion": c} for p, c in zip(self.val, ev.completions)])
