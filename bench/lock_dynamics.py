"""Trace one lock's training: correctness with and without the password every N steps, and the loss.

When a run's report names a weak lock (`weak_locks`: the password no longer opens the capability),
this retrains that lock exactly as the run did (same config, lock seed, cached strong base) and
shows when, or whether, the with-password behaviour was learned. The traced lock is the run's lock:
evaluation between steps leaves the training RNG alone, and the script checks the final weights
against the run's cached unit when `--cache-dir` holds it.

    python bench/lock_dynamics.py configs/sensitivity_function_composition.yaml --lock-seed 2 \\
        --cache-dir CACHE --out bench/results/lock_dynamics_sensitivity_s2.json

Threads: 1, as `pwlock run`'s workers, so that float rounding (and the lock) matches the run's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from pwlock.evaluate import evaluate
from pwlock.experiments.config import load_config
from pwlock.experiments.runner import Experiment, task_splits
from pwlock.experiments.store import MANIFEST, Store
from pwlock.lora import merged
from pwlock.train.sft import sft


class Traced(Experiment):
    """An Experiment whose lock training evaluates the model every `every` steps."""

    def __init__(self, *args: Any, every: int, problems: int) -> None:
        super().__init__(*args)
        self.every, self.trace_val, self.trace = every, self.val[:problems], []

    def correctness(self, model: Any, password: str | None) -> float:
        return evaluate(model, self.tokenizer, self.task, self.trace_val, password=password,
                        max_new_tokens=self.cfg.eval.max_new_tokens, batch_size=self.cfg.eval.batch_size).correctness

    def record(self, model: Any, step: int, loss: float | None) -> None:
        rng = torch.get_rng_state()  # greedy evaluation; keep the training RNG exactly where it was
        was_training = model.training
        model.eval()
        point = dict(step=step, loss=loss, with_password=self.correctness(model, self.cfg.lock.password),
                     without_password=self.correctness(model, None))
        model.train(was_training)
        torch.set_rng_state(rng)
        self.trace.append(point)
        print(json.dumps(point), flush=True)

    def train(self, model: Any, data: Any, args: Any, desc: str, kl_target: Any = None, tokenizer: Any = None) -> Any:
        if not desc.startswith("lock"):  # the strong base, pi_strong, pi_weak: trained as the run trains them
            return super().train(model, data, args, desc, kl_target, tokenizer)
        model = self.trainable(model, args.seed)
        self.record(model, 0, None)
        window: list[float] = []

        def on_step(step: int, loss: float) -> None:
            window.append(loss)
            if step % self.every == 0:
                self.record(model, step, sum(window) / len(window))
                window.clear()

        sft(model, tokenizer or self.tokenizer, data, args, desc=desc, kl_target=kl_target, on_step=on_step)
        if window:
            self.record(model, self.trace[-1]["step"] + len(window), sum(window) / len(window))
        return merged(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--lock-seed", type=int, default=0, help="the model seed of the lock (one of lock.seeds)")
    ap.add_argument("--method", default=None, help="lock method (default: the config's first)")
    ap.add_argument("--weak", default=None, help="pi_weak (default: the config's first weak policy)")
    ap.add_argument("--every", type=int, default=50, help="evaluate every this many optimizer steps")
    ap.add_argument("--problems", type=int, default=300, help="validation problems per evaluation")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="a run's cache: its units are reused read-only (the strong base, pi_strong, pi_weak)")
    ap.add_argument("--out", type=Path, default=None, help="write the trace here as JSON")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field as `pwlock run --set` does, e.g. lock.sft.epochs=4")
    a = ap.parse_args()
    torch.set_num_threads(1)

    cfg = load_config(a.config, a.overrides)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"seed": a.lock_seed})})
    method, weak = a.method or cfg.lock.methods[0], a.weak or cfg.lock.weak_policies[0]
    task, splits = task_splits(cfg.task)
    with tempfile.TemporaryDirectory(prefix="pwlock-trace-") as tmp:
        root = Path(tmp)
        if a.cache_dir is not None:  # link the run's units, but retrain the lock itself
            for unit in a.cache_dir.iterdir():
                if unit.is_dir() and not unit.name.startswith(("lock_", "eval_", "elicit_", ".")):
                    (root / unit.name).symlink_to(unit.resolve())
        exp = Traced(cfg, task, splits, Store(root, recompute=False), every=a.every, problems=a.problems)
        folder = exp.lock(method, weak)
        same = None
        if a.cache_dir is not None and (a.cache_dir / folder.name / MANIFEST).is_file():
            ours, theirs = (json.loads((f / MANIFEST).read_text())["files"]["model/model.safetensors"]
                            for f in (folder, a.cache_dir / folder.name))
            same = ours == theirs
            print(f"traced lock {folder.name} {'is identical to' if same else 'DIFFERS from'} the cached one")
    result = dict(config=a.config, overrides=a.overrides, lock_seed=a.lock_seed, method=method, weak=weak, unit=folder.name,
                  problems=len(exp.trace_val), identical_to_cache=same, trace=exp.trace)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
