"""Model organisms: locked models with a known hidden capability, and their benign twins.

An organism is a directory:

    organism.json     the card: task, splits, lock (method, pi_weak, variant, seed), correctness with
                      and without password, its twins' correctness, the pwlock version
    model/            the locked model and its tokenizer (`save_pretrained`; AutoModelForCausalLM loads it)
                      (a circuit-broken organism: its plain lock after representation rerouting)
    twins/weak/       the weak twin: the lock's starting point trained on pi_weak alone, no password
    twins/strong/     the strong twin: pi_strong's model (the strong base)
    demos.jsonl       pi_strong's completions of the elicitation split ({"id", "completion"}), without
                      password: what `demos:K` budgets draw from
    password.json     the password(s): read by the evaluator, never handed to a method

Any directory with such a card is an organism, so users can share their own (a locked 7B on the
hub). A suite is a named, versioned list of organisms, built from experiment configs (the
`configs/suites/*.yaml` shipped with pwlock, or a user's file): `pwlock organisms build --suite toy`.

A suite entry with `circuit_breaker` settings makes circuit-broken organisms (`train/rerouting.py`):
each plain lock of the entry (trained, or taken from the cache as for a plain organism) is copied
and trained so that its no-password representations at the chosen layers turn orthogonal to the
plain lock's while its password path stays put. Their twins, demos and password are the plain
lock's: circuit breaking changes only the locked model, so the benign controls (pi_weak's model
from the same starting point, and pi_strong) are the same models.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pwlock import __version__
from pwlock.errors import ConfigError, OrganismError
from pwlock.experiments.config import ExperimentConfig, ModelConfig, TaskConfig, load_config
from pwlock.experiments.store import Store
from pwlock.io import read_json, write_atomic, write_jsonl
from pwlock.lock import lock_examples, lock_name
from pwlock.types import Training

if TYPE_CHECKING:  # the runner imports torch: organisms.py loads it only to build
    from pwlock.experiments.runner import Experiment, Locked

CARD = "organism.json"
PASSWORD = "password.json"
DEMOS = "demos.jsonl"
FORMAT = 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CircuitBreaker(Strict):
    """Representation rerouting of a suite entry's locks (`train.rerouting.RerouteArgs`); the defaults
    are the `demo-cb` suite's."""

    layers: list[int] = Field(min_length=1)
    """Transformer blocks (0-based) whose outputs are rerouted on no-password examples."""
    steps: int = Field(200, gt=0)
    alpha: float = Field(10.0, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0, le=1)
    nll: float = Field(5.0, ge=0)
    """Weight of the completion NLL on both kinds of examples (0: the published recipe, whose
    no-password correctness fell far below pi_weak's on a demo lock)."""
    centre: bool = False
    """Reroute centred states (`train.rerouting.rerouting_loss`): for models with a massive activation."""
    relative_retain: bool = False
    """Retain distances relative to each token's norm (`train.rerouting.retain_loss`): for models with a
    sink token whose norm dwarfs the others'."""


class SuiteEntry(Strict):
    config: str
    """An experiment config: a packaged one by file name (function_composition.yaml) or a path
    (relative to the suite file)."""
    set: list[str] = []
    """Overrides, as `--set` takes them (e.g. lock.seeds=[0])."""
    locks: list[str] | None = None
    """Lock names of that config (`sft`, `from_scratch`, `sft-identity8`, ...); None: all of them."""
    seeds: list[int] = Field([0], min_length=1)
    """Lock seeds: one organism per (lock, seed)."""
    circuit_breaker: CircuitBreaker | None = None
    """Circuit-break each of these locks: organisms `<config>-<lock>-circuit_broken-s<seed>` (see the
    module docstring)."""


class Suite(Strict):
    name: str
    version: int = Field(gt=0)
    description: str = ""
    organisms: list[SuiteEntry] = Field(min_length=1)


class Card(Strict):
    """organism.json (see the module docstring); the password is not in it."""

    format: int = FORMAT
    pwlock: str
    name: str
    suite: str | None = None
    suite_version: int | None = None
    task: TaskConfig
    model: ModelConfig
    """How to load the models (dtype, device, chat template); `name` is the base the lock started from."""
    lock: dict[str, Any]
    """method, weak_policy, variant, seed, no_password_fraction, n_wrong_passwords."""
    pi_strong: str
    eval: dict[str, Any]
    """max_problems, max_new_tokens, batch_size: the validation problems (the first max_problems of the
    split) and how completions are generated."""
    correctness: dict[str, float]
    """with_password / without_password, greedy, on the validation problems."""
    twins: dict[str, dict[str, float]]
    """weak / strong: their correctness without password."""
    training: Training | None = None
    """How methods fine-tune it (`Context.training`): its config's first elicit.sft block's settings (or,
    with none, its first RL block's lr, batch and optimizer). None on cards made before cards held them:
    `Training()`, the toy configs' settings."""


SCRATCH_SHAPE = {"arch", "hidden_size", "layers", "heads", "max_length"}


def card_text(card: Card, method: str) -> str:
    """organism.json's text. A pretrained base's shape is in its own config.json: the from-scratch shape
    fields (defaults it never used) would tell a reader that SmolLM2 has 4 layers of 128, so they are
    left out unless the lock trained a model of that shape (`from_scratch`)."""
    unused = {"model": SCRATCH_SHAPE} if card.model.name is not None and method != "from_scratch" else None
    return card.model_dump_json(indent=1, exclude=unused)


@dataclass(frozen=True)
class Organism:
    """A loaded card and where its files are."""

    dir: Path
    card: Card

    @property
    def name(self) -> str:
        return self.card.name

    def model_dir(self, target: str = "locked") -> Path:
        """`locked`, `weak_twin` or `strong_twin`."""
        return self.dir / {"locked": "model", "weak_twin": "twins/weak", "strong_twin": "twins/strong"}[target]

    def weights(self, target: str = "locked") -> str:
        """A digest of `target`'s weight files: organisms of one lock seed share their twins (the sft and
        from_scratch locks of seed 0 have the same weak twin), and reports count such a model once."""
        return weights_digest(self.model_dir(target))

    def password(self) -> dict[str, Any]:
        """For the evaluator only."""
        secret: dict[str, Any] = read_json(self.dir / PASSWORD)
        return secret

    def demos(self) -> dict[str, str]:
        """pi_strong's completion of each elicitation problem, by id."""
        lines = (self.dir / DEMOS).read_text().splitlines()
        return {r["id"]: r["completion"] for r in map(json.loads, lines)}


def weights_digest(folder: Path) -> str:
    """A digest of a model dir's weight files, read once per process while the files stay unchanged
    (a 7B model is 14 GB)."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return _digest(tuple((f, f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.cache
def _digest(files: tuple[tuple[Path, int, int], ...]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for f, _, _ in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def suites_dir() -> Path:
    return Path(str(resources.files("pwlock") / "configs" / "suites"))


def suite_names() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


def load_suite(spec: str | Path) -> tuple[Suite, Path]:
    """A suite by name (packaged) or path, and the folder its relative config paths start from."""
    path = Path(spec)
    if not path.suffix:
        path = suites_dir() / f"{spec}.yaml"
        if not path.is_file():
            raise OrganismError(f"suite {spec!r} does not exist; known: {', '.join(suite_names())} (or a path)")
    if not path.is_file():
        raise OrganismError(f"suite file not found: {path}")
    try:
        return Suite.model_validate(yaml.safe_load(path.read_text())), path.parent
    except (ValidationError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from None


def entry_config(entry: SuiteEntry, base: Path) -> ExperimentConfig:
    packaged = Path(str(resources.files("pwlock") / "configs" / entry.config))
    path = packaged if packaged.is_file() else base / entry.config
    return load_config(path, entry.set)


CIRCUIT_BROKEN = "circuit_broken"


class Planned(NamedTuple):
    """One organism of a suite: its config, lock key (method, pi_weak, variant), lock seed, and the
    circuit breaking applied to that lock (None: the plain lock)."""

    cfg: ExperimentConfig
    key: tuple[str, str, str]
    seed: int
    circuit_breaker: CircuitBreaker | None = None

    @property
    def name(self) -> str:
        lock = lock_name(*self.key) + (f"-{CIRCUIT_BROKEN}" if self.circuit_breaker else "")
        return organism_name(self.cfg, lock, self.seed)


def organism_name(cfg: ExperimentConfig, lock: str, seed: int) -> str:
    return f"{cfg.name}-{lock}-s{seed}"


def plan(suite: Suite, base: Path) -> list[Planned]:
    """Every organism of the suite, in order."""
    from pwlock.experiments.runner import lock_keys, twin_training

    out = []
    for entry in suite.organisms:
        cfg = entry_config(entry, base)
        twin_training(cfg)  # every organism has twins: a config that cannot train them fails before any lock
        keys = {lock_name(*k): k for k in lock_keys(cfg)}
        unknown = [n for n in entry.locks or [] if n not in keys]
        if unknown:
            raise ConfigError(f"suite {suite.name}: {entry.config}: locks {unknown} unknown; its locks: {list(keys)}")
        if entry.circuit_breaker is not None:
            # A circuit breaker reroutes pi_weak's completions and keeps the one password's path.
            odd = [n for n in entry.locks or keys if keys[n][2] != "regular" or keys[n][1] == "fixedrdm"]
            if odd:
                raise ConfigError(f"suite {suite.name}: {entry.config}: circuit_breaker takes regular locks with "
                                  f"a pi_weak of completions; not {odd}")
        out += [Planned(cfg, keys[n], seed, entry.circuit_breaker) for n in entry.locks or keys for seed in entry.seeds]
    return out


def build_suite(spec: str | Path, root: Path, cache_dir: Path | None = None, workers: int = 1) -> list[Path]:
    """Build (or reuse) every organism of a suite under `root/<suite name>/`; returns their dirs.
    Training units are cached under `cache_dir` (default: root/cache), so a rebuild resumes."""
    from pwlock.experiments.runner import log
    from pwlock.experiments.schedule import run_jobs

    suite, base = load_suite(spec)
    cache = cache_dir or root / "cache"
    jobs = [(p, cache, root / suite.name, suite) for p in plan(suite, base)]
    dirs = run_jobs(build_job, jobs, workers, desc=f"organisms ({suite.name})")
    by_weights: dict[str, list[str]] = {}
    for d in dirs:
        by_weights.setdefault(weights_digest(d / "model"), []).append(d.name)
    for same in (names for names in by_weights.values() if len(names) > 1):
        # two configs that train the same lock (same policies, data, settings, seed) give one model twice,
        # which a stress test's mean over organisms would count twice
        log(f"warning: suite {suite.name}: {', '.join(same)} have identical weights: one lock listed {len(same)} "
            "times; keep one in the suite")
    return dirs


def build_job(job: tuple[Planned, Path, Path, Suite]) -> Path:
    planned, cache, dest, suite = job
    return build_organism(planned.cfg, planned.key, planned.seed, Store(cache), dest, suite, planned.circuit_breaker)


def build_organism(cfg: ExperimentConfig, key: tuple[str, str, str], seed: int, store: Store, dest_root: Path,
                   suite: Suite | None = None, circuit_breaker: CircuitBreaker | None = None) -> Path:
    """Train (or take from the cache) one lock, its twins and their evaluations; write its organism dir.
    With `circuit_breaker`, the organism's model is that lock circuit-broken (`circuit_broken_lock`)."""
    from pwlock.evaluate import evaluate
    from pwlock.experiments.runner import Experiment, Locked, task_splits

    method, weak, variant = key
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"seed": seed})})
    task, splits = task_splits(cfg.task)
    exp = Experiment(cfg, task, splits, store)
    lock_dir = exp.lock(method, weak, variant)
    lk = Locked(method, weak, variant, lock_dir, *exp.load(lock_dir / "model"))
    correctness = measured_correctness(exp.evaluate_locked(lk))
    lock_card: dict[str, Any] = {"method": method}
    if circuit_breaker is not None:
        base_lock = {"method": method, "name": lock_name(*key), "correctness": correctness}
        lock_dir, cosine = circuit_broken_lock(exp, lk, circuit_breaker)
        lk = Locked(f"{method}-{CIRCUIT_BROKEN}", weak, variant, lock_dir, *exp.load(lock_dir / "model"))
        correctness = measured_correctness(exp.evaluate_locked(lk))
        lock_card = {"method": CIRCUIT_BROKEN, "base_lock": base_lock,
                     "circuit_breaker": {**circuit_breaker.model_dump(), "cosine": cosine}}
    weak_dir = exp.twin(weak)
    strong_dir = Path(str(exp.strong_twin()))
    twins = {}
    for name, path in (("weak", weak_dir), ("strong", strong_dir)):
        model, tokenizer = exp.load(path)
        ev = evaluate(model, tokenizer, task, exp.val, password=None, max_new_tokens=cfg.eval.max_new_tokens,
                      batch_size=cfg.eval.batch_size, generator=exp.generator)
        twins[name] = {"without_password": ev.correctness}

    name = Planned(cfg, key, seed, circuit_breaker).name
    dest = dest_root / name
    tmp = dest_root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    link_tree(lock_dir / "model", tmp / "model")
    link_tree(weak_dir, tmp / "twins" / "weak")
    if strong_dir.is_dir():
        link_tree(strong_dir, tmp / "twins" / "strong")
    else:  # a hub id or packaged model: the strong twin is that pretrained model itself
        model, tokenizer = exp.load(strong_dir)
        model.save_pretrained(tmp / "twins" / "strong")
        tokenizer.save_pretrained(tmp / "twins" / "strong")
    strong = exp.sample_policy("strong", splits["elicit"], random.Random("demos"))
    write_jsonl(tmp / DEMOS, [{"id": p.id, "completion": c} for p, c in zip(splits["elicit"], strong)])
    lock = cfg.lock
    secret = {"password": lock.password, "domain_passwords": lock.domain_passwords}
    write_atomic(tmp / PASSWORD, json.dumps(secret, indent=1))
    card = Card(pwlock=__version__, name=name, suite=suite.name if suite else None,
                suite_version=suite.version if suite else None, task=cfg.task,
                model=cfg.model.model_copy(update={"seed": seed}),
                lock={**lock_card, "weak_policy": weak, "variant": variant, "seed": seed,
                      "no_password_fraction": lock.no_password_fraction,
                      "n_wrong_passwords": len(lock.wrong_passwords)},
                pi_strong=cfg.policies.strong, eval=cfg.eval.model_dump(include={"max_problems", "max_new_tokens",
                                                                                  "batch_size"}),
                correctness=correctness, twins=twins, training=training_of(cfg))
    write_atomic(tmp / CARD, card_text(card, method))
    if dest.exists():
        shutil.rmtree(dest)
    os.rename(tmp, dest)
    return dest


def training_of(cfg: ExperimentConfig) -> Training:
    """The card's `training`: the config's own elicitation settings, which its author chose for this model
    (the paper uses the lock's learning rate for SFT elicitation and expert iteration)."""
    if sft_blocks := cfg.elicit.sft_blocks():
        return sft_blocks[0].training()
    if rl_blocks := cfg.elicit.rl_blocks():
        r = rl_blocks[0]
        return Training(lr=r.lr, batch_size=r.batch_size, optimizer=r.optimizer)
    return Training()


def measured_correctness(rows: list[dict[str, Any]]) -> dict[str, float]:
    """with_password / without_password from a locked model's evaluation rows (all validation
    problems, the task's own prompt)."""
    rows = [r for r in rows if r["domain"] is None and r["prompt"] is None and r["val_half"] is None]
    return {("with_password" if r["with_password"] else "without_password"): r["correctness"] for r in rows}


def circuit_broken_lock(exp: Experiment, lk: Locked, settings: CircuitBreaker) -> tuple[Path, dict[str, float]]:
    """The lock `lk` circuit-broken (a cached unit keyed by the plain lock's unit and the settings),
    and the mean cosine of its hidden states at the rerouted layers to the plain lock's on the
    validation prompts, without and with the password.

    Data: one epoch of the lock's own D_lock (`lock_examples`, the lock's password, wrong passwords
    and no-password fraction): its weak examples (no or a wrong password, pi_weak's completions)
    are rerouted, its strong ones (the password, pi_strong's completions) retained. Full fine-tuning,
    or LoRA adapters where the config sets model.lora (as the lock itself was trained)."""
    from pwlock.train.rerouting import RerouteArgs, check_layers, circuit_break, hidden_cosine

    cfg, task = exp.cfg, exp.task
    n_layers = lk.model.config.num_hidden_layers
    try:  # before any training: a bad layer list is the suite's error
        check_layers(settings.layers, n_layers)
    except ConfigError as e:
        raise ConfigError(f"circuit_breaker.{e} (lock {lk.name} of {cfg.name})") from None
    args = RerouteArgs(layers=tuple(settings.layers), steps=settings.steps, alpha=settings.alpha,
                       batch_size=settings.batch_size, lr=settings.lr, nll=settings.nll, centre=settings.centre,
                       relative_retain=settings.relative_retain,
                       seed=cfg.model.seed)
    # The plain lock's unit names everything its D_lock depends on; the cosines are measured on `eval`'s problems.
    # `centre` and `relative_retain` enter the key only when set, so locks circuit-broken before they existed
    # keep their units.
    breaker = settings.model_dump(exclude={k for k in ("centre", "relative_retain") if not getattr(settings, k)})
    key = {"lock": lk.dir.name, "circuit_breaker": breaker, "seed": cfg.model.seed, "eval": exp.eval_key}

    def compute(folder: Path) -> list[dict[str, Any]]:
        problems = exp.splits["lock"]
        lock = cfg.lock
        d_lock = lock_examples(task, problems, exp.lock_samples("strong", problems, 0),
                               exp.lock_samples(lk.weak, problems, 0), password=lock.password,
                               wrong_passwords=lock.wrong_passwords, no_password_fraction=lock.no_password_fraction,
                               rng=random.Random("circuit-breaker"))
        strong, weak = d_lock[0::2], d_lock[1::2]  # lock_examples: a strong then a weak example per problem
        frozen, tokenizer = exp.load(lk.dir / "model")
        model = exp.trainable(exp.load(lk.dir / "model")[0], cfg.model.seed)
        circuit_break(model, frozen, tokenizer, weak, strong, args, desc=f"circuit breaking {lk.name}")
        exp.save(model, folder)
        trained = exp.load(folder / "model")[0]
        return [{name: hidden_cosine(trained, frozen, tokenizer, [task.prompt(p, password) for p in exp.val],
                                     args.layers, centre=args.centre)
                 for name, password in (("without_password", None), ("with_password", lock.password))}]

    folder, rows = exp.store.run(f"{CIRCUIT_BROKEN}_{lk.name}", key, compute)
    return folder, {k: float(rows[0][k]) for k in ("without_password", "with_password")}


def link_tree(src: Path, dst: Path) -> None:
    """Copy a model folder, by hard links where the file system allows (a 7B model is not copied)."""
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def load_organism(path: Path) -> Organism:
    """An organism dir, checked: a card this pwlock can read, and its model files."""
    card_path = path / CARD
    if not path.is_dir():
        raise OrganismError(f"organism {path}: no such directory")
    if not card_path.is_file():
        raise OrganismError(f"{path} is not an organism: it has no {CARD}")
    try:
        raw = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise OrganismError(f"{card_path}: not a readable card ({e})") from None
    made_by = raw.get("pwlock", "0") if isinstance(raw, dict) else "0"
    if isinstance(raw, dict) and (raw.get("format", FORMAT) > FORMAT or Version(str(made_by)) > Version(__version__)):
        raise OrganismError(f"{card_path}: made by pwlock {made_by} (card format {raw.get('format')}); this is "
                            f"pwlock {__version__}: upgrade pwlock to read it")
    try:
        card = Card.model_validate(raw)
    except ValidationError as e:
        raise OrganismError(f"{card_path}: {e}") from None
    if card.training is None:  # a SmolLM2 lock trained at the toy settings under-elicits it 10-fold (README)
        warnings.warn(f"organism {path}: its card records no training settings (built before cards held them), so "
                      "methods fine-tune it at the toy settings (AdamW, lr 3e-4, batch 32); rebuild it with "
                      "`pwlock organisms build` to record its config's", stacklevel=2)
    organism = Organism(path, card)
    for target in ("locked", "weak_twin"):
        if not (organism.model_dir(target) / "config.json").is_file():
            raise OrganismError(f"organism {path}: {organism.model_dir(target)} holds no model (config.json)")
    return organism


def suite_organisms(spec: str | Path, root: Path) -> list[Organism]:
    """The organisms of a suite: built ones under root/<suite>, or every organism dir under a path."""
    path = Path(spec)
    if path.is_dir():
        dirs = sorted(p.parent for p in path.glob(f"*/{CARD}"))
        if (path / CARD).is_file():
            dirs = [path]
        if not dirs:
            raise OrganismError(f"{path}: no organism dirs (folders with {CARD}) in it")
        return [load_organism(d) for d in dirs]
    suite, base = load_suite(spec)
    names = [p.name for p in plan(suite, base)]
    missing = [n for n in names if not (root / suite.name / n / CARD).is_file()]
    if missing:
        raise OrganismError(f"suite {suite.name}: {len(missing)} organisms not built under {root / suite.name} "
                            f"({', '.join(missing[:3])}...): run `pwlock organisms build --suite {spec}`")
    return [load_organism(root / suite.name / n) for n in names]


def export(organism: Organism, dest: Path) -> Path:
    """A copy of an organism dir at `dest` (to share it; the password file goes with it)."""
    if dest.exists():
        raise OrganismError(f"{dest} exists")
    shutil.copytree(organism.dir, dest)
    return dest
