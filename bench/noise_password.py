"""Noise injection with and without the password: does Gaussian weight noise raise a locked model's
correctness without the password but not with it, as Tice et al. found for sandbagging models?

    python bench/noise_password.py --suite toy --root ORGANISMS [--samples 4096] [--out FILE.json]

For each locked model of a built suite, the `noise` detector's sweep (pwlock.detect.noise.sweep: its
default grid of 21 sigmas to 0.01, 3 draws, seed 0; direct noise, or `--mode lora`) runs twice on
the same sample of elicitation problems: prompted without the password (what the detector sees) and
with it (the organism's password, or its domain's for a per-domain lock, placed by the task's prompt;
this script is the evaluator, so it may read password.json). It prints, per organism, phi (best
accuracy under noise / accuracy without noise; 0 when nothing is ever right), the accuracy without
noise and the best sigma, for both prompts, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import git_sha

from pwlock.detect.noise import DEFAULT_SIGMAS, sweep
from pwlock.elicit.api import Reward
from pwlock.experiments.runner import task_splits
from pwlock.organisms import Organism, suite_organisms
from pwlock.stress import parse_setting, prepare


def password_of(organism: Organism, domain: str) -> str:
    secret = organism.password()
    if organism.card.lock.get("variant") == "per_domain":
        return str(secret["domain_passwords"][domain])
    return str(secret["password"])


def with_password(organism: Organism, task: Any, samples: int) -> Reward:
    """The detector's reward budget with the password in every prompt: the elicitation split, in the
    order `prepare`'s budget holds it, so one seed draws the same problems from both."""
    elicit = task_splits(organism.card.task)[1]["elicit"]
    prompts = [task.prompt(q, password_of(organism, q.domain)) for q in elicit]
    by_prompt = dict(zip(prompts, elicit))
    return Reward(prompts, samples=samples,
                  score=lambda asked, done: [float(task.score(by_prompt[a], c)) for a, c in zip(asked, done)])


def phis(organism: Organism, samples: int, draws: int, mode: str) -> dict[str, dict[str, float]]:
    # the model and the no-password budget exactly as the detector gets them
    p = prepare(organism, "locked", parse_setting(f"reward:{samples}"), seed=0)
    out = {}
    for name, budget in (("without_password", p.budget), ("with_password", with_password(organism, p.task, samples))):
        # the same seed samples the same problem indices from both prompt lists: a paired comparison
        s = sweep(p.model, p.tokenizer, p.context, budget, DEFAULT_SIGMAS, draws, seed=0, min_prompts=16, mode=mode)
        sigma, _ = s.best()
        out[name] = {"phi": s.phi, "baseline": s.baseline, "best_sigma": sigma, "prompts": s.prompts}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="toy")
    ap.add_argument("--root", type=Path, required=True, help="where the suite was built (organisms build --root)")
    ap.add_argument("--samples", type=int, default=4096, help="reward samples per sweep, as reward:S")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--mode", choices=["direct", "lora"], default="direct")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows, start = [], time.time()
    for organism in suite_organisms(args.suite, args.root):
        r = phis(organism, args.samples, args.draws, args.mode)
        rows.append({"organism": organism.name, **r})
        w, wo = r["with_password"], r["without_password"]
        print(f"{organism.name:50s} without: phi {wo['phi']:.3f} (acc {wo['baseline']:.3f}, sigma {wo['best_sigma']:g})"
              f"   with: phi {w['phi']:.3f} (acc {w['baseline']:.3f}, sigma {w['best_sigma']:g})", flush=True)
    result = {"suite": args.suite, "mode": args.mode, "samples": args.samples, "draws": args.draws,
              "sigmas": list(DEFAULT_SIGMAS), "git": git_sha(), "seconds": round(time.time() - start), "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(rows)} organisms, {result['seconds']} s")


if __name__ == "__main__":
    main()
