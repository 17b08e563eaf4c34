"""Training throughput on a shared CPU: a demo-sized SFT step alone and beside one busy process.

    python bench/shared_cpu.py [--seconds 6] [--out bench/results/shared_cpu.json]

Each measurement is a fresh worker process (so OpenMP reads its environment at start-up) that
trains the demo's model (Llama, hidden 96, 4 layers, 4 heads, word-level tokenizer) on batches
of 64 D_lock examples of the function-composition task for --seconds after a warm-up, and
prints steps/s. Conditions: torch threads {1, 2} x OpenMP wait policy {default (spin), PASSIVE}
x {alone, beside one CPU-bound process (a pure-Python busy loop)}; alone and beside are
interleaved so both see the same machine. The issue's target: beside one busy process,
training keeps >= 40% of its quiet throughput (quiet = 2 threads, default policy).

Why: with as many intra-op threads as cores, a thread descheduled by the other process holds
every parallel region's barrier for a scheduler time slice while its sibling spins.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(seconds: float, warmup: int) -> None:
    import torch
    from common import demo_training, train_step  # bench/common.py

    model, batches, optimizer = demo_training()

    def step(i: int) -> None:
        train_step(model, batches[i % len(batches)], optimizer)

    for i in range(warmup):
        step(i)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(steps)
        steps += 1
    print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start), "threads": torch.get_num_threads()}))


def busy() -> None:
    while True:
        pass


def measure(threads: int, policy: str | None, beside: bool, seconds: float) -> float:
    """`policy`: None (OpenMP's default), "PASSIVE", or "SPIN=<n>" (default policy, GOMP_SPINCOUNT=n:
    libgomp spins n times before an idle thread sleeps; its default is 300,000, PASSIVE is 0)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    if policy and policy.startswith("SPIN="):
        env["GOMP_SPINCOUNT"] = policy.removeprefix("SPIN=")
    elif policy:
        env["OMP_WAIT_POLICY"] = policy
    hog = subprocess.Popen([sys.executable, __file__, "--busy"]) if beside else None
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", "--seconds", str(seconds)], env=env,
                             capture_output=True, text=True, check=True).stdout
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return json.loads(out.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the median is kept")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "shared_cpu.json")
    parser.add_argument("--spincounts", type=int, nargs="*", default=[],
                        help="also measure 2 threads with OpenMP's default policy and GOMP_SPINCOUNT=N (libgomp)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.busy:
        return busy()
    if args.worker:
        return worker(args.seconds, warmup=5)

    import statistics

    conditions = [(t, p) for t in (2, 1) for p in (None, "PASSIVE")]
    conditions += [(2, f"SPIN={n}") for n in args.spincounts]
    rates: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for threads, policy in conditions:
            for beside in (False, True):
                name = f"threads={threads} wait={policy or 'default'} {'beside 1 busy' if beside else 'alone'}"
                rates.setdefault(name, []).append(measure(threads, policy, beside, args.seconds))
                print(f"{name}: {rates[name][-1]:.1f} steps/s", flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    quiet = median["threads=2 wait=default alone"]
    result = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "steps_per_s": median,
              "share_of_quiet": {name: v / quiet for name, v in median.items()}, "target_share_beside_busy": 0.40}
    print("\nshare of the quiet 2-thread throughput (target beside one busy process: >= 0.40):")
    for name, share in result["share_of_quiet"].items():
        print(f"  {name:45s} {median[name]:6.1f} steps/s  {share:5.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
