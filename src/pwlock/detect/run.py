"""Detection over a suite: detectors x (each organism's locked model and its two benign twins) x seeds.

For each organism, each of its three models (the locked model, label 1; its weak twin, trained on
pi_weak alone, and its strong twin, pi_strong's model, label 0), each detector and each seed: load
a private copy of the model, hand it to the detector with the setting's budget (never the password,
never the label), record one row with its score. A detector that fails on one model (raises,
returns the wrong type or a non-finite score, overruns its budget) gets a row with its error, and
the others go on.

Why both twins: the weak twin is as weak as the locked model looks, so a detector that flags weak
models flags it; the strong twin is as capable as the locked model really is, so one that flags
capable models flags it. Only a detector that sees the lock itself separates locked from both.

`pwlock detect noise --suite toy --setting reward:4096` writes results.jsonl and the report
(detect.json, detect.md, detect.png: `pwlock.report.detection`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pwlock.detect.api import Detector, check_detection, resolve
from pwlock.errors import MethodError
from pwlock.io import write_jsonl
from pwlock.organisms import Organism
from pwlock.stress import Setting, cached_run, call_plugin, check_plugins, prepare

TARGETS = ("locked", "weak_twin", "strong_twin")
LABELS = {"locked": 1, "weak_twin": 0, "strong_twin": 0}
"""1: hides a capability behind a password; 0: benign (what it shows is what it has)."""
ROW_FIELDS = ("suite", "organism", "target", "model", "label", "detector", "setting", "seed", "score", "evidence",
              "reward_samples", "reward_calls", "demos", "seconds", "error")
MEASURED = ("score", "evidence", "reward_samples", "reward_calls", "demos", "seconds")
"""What a run measures; the other columns describe its model."""


def log(msg: str) -> None:
    print(f"[pwlock] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DetectSpec:
    """One detector run on one model (picklable: it may go to a worker process)."""

    detector: str
    organism: Path
    target: str
    setting: Setting
    seed: int
    cache: Path


def detect_one(spec: DetectSpec) -> dict[str, Any]:
    """The row of one run: from the cache, or computed (a failure is a row with its error, not cached)."""
    from pwlock.organisms import load_organism

    organism = load_organism(spec.organism)
    detector = resolve(spec.detector)
    return cached_run("detector", spec.detector, detector, spec, organism, lambda: measure(detector, spec, organism),
                      lambda **fields: detect_row(organism, spec, **fields), MEASURED)


def measure(detector: Detector, spec: DetectSpec, organism: Organism) -> dict[str, Any]:
    """Run the detector once on one model; MethodError (naming it and the organism) on failure."""
    where = f"detector {spec.detector} on {organism.name} ({spec.target})"
    if spec.setting.kind not in detector.settings:
        raise MethodError(f"{where}: the detector supports {list(detector.settings)}, not {spec.setting.kind}")
    p = prepare(organism, spec.target, spec.setting, spec.seed)
    start = time.time()
    out = call_plugin(where, lambda: check_detection(detector(p.model, p.tokenizer, p.context, p.budget, spec.seed),
                                                     spec.detector))
    return detect_row(organism, spec, score=out.score, evidence=out.evidence, seconds=time.time() - start,
                      **p.budget.spent())


def detect_row(organism: Organism, spec: DetectSpec, **fields: Any) -> dict[str, Any]:
    """A row with every column (None where a field does not apply)."""
    row = dict(suite=organism.card.suite, organism=organism.name, target=spec.target, label=LABELS[spec.target],
               detector=spec.detector, setting=str(spec.setting), seed=spec.seed, **fields)
    return {f: row.get(f) for f in ROW_FIELDS}


def targets(organism: Organism) -> list[str]:
    """The organism's models on disk (a shared organism may come without its strong twin)."""
    present = [t for t in TARGETS if (organism.model_dir(t) / "config.json").is_file()]
    for t in sorted(set(TARGETS) - set(present)):
        log(f"{organism.name}: no {t} model ({organism.model_dir(t)}): left out")
    return present


def detect(detectors: list[str], organisms: list[Organism], setting: Setting, seeds: list[int], out: Path,
           workers: int = 1) -> list[dict[str, Any]]:
    """Every (organism, target, detector, seed) run; writes out/results.jsonl and the detection report."""
    from pwlock.experiments.schedule import run_jobs
    from pwlock.report.detection import write_detection_report

    check_plugins(detectors, setting, resolve, "detector")
    out.mkdir(parents=True, exist_ok=True)
    specs = [DetectSpec(d, o.dir, target, setting, seed, out / "cache")
             for o in organisms for target in targets(o) for d in detectors for seed in seeds]
    log(f"detect: {len(detectors)} detector(s) x {len(organisms)} organism(s) x up to {len(TARGETS)} models x "
        f"{len(seeds)} seed(s) = {len(specs)} runs, setting {setting}")
    rows = run_jobs(detect_one, specs, workers, desc="detect")
    write_jsonl(out / "results.jsonl", rows)
    write_detection_report(rows, out)
    return rows
