"""HumanEval canonical solutions through the sandbox: the worker pool against one worker.

    /tmp/venv/bin/python bench/humaneval_pool.py [--workers N] [--timeout 3.0]

Scores all 164 canonical solutions (each a program + judge pair of sandboxed processes, see
`pwlock.sandbox.run_function_tests`) with one worker and with N workers (default: the CPU
count), in the same run, and reports solutions per second and the ratio (with the CPU the
sandbox processes used: one worker already keeps more than one core busy, since a judge and
a program start side by side, which bounds the ratio on few cores). Then checks that
every solution passes with HumanEval's 3 s limit and that every one fails when its body is
replaced by `pass`. Prints the numbers and writes them to bench/results/humaneval_pool.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

from pwlock.sandbox import available_isolation
from pwlock.tasks.code_generation import HumanEval


def timed_scores(task: HumanEval, problems, completions) -> tuple[list[bool], float, float]:
    """Scores, wall seconds, and CPU seconds of the sandbox processes (children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    scores = task.score_batch(problems, completions)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return scores, wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()

    pool = HumanEval(timeout=args.timeout, workers=args.workers)
    single = HumanEval(timeout=args.timeout, workers=1)
    problems = pool.problems()
    canonical = [p.answer for p in problems]
    body_pass = ["    pass\n" for _ in problems]  # the body continuing each prompt is just `pass`

    timed_scores(pool, problems[:4], canonical[:4])  # warm up (isolation probe, page cache)
    pooled, pooled_s, pooled_cpu = timed_scores(pool, problems, canonical)
    serial, serial_s, serial_cpu = timed_scores(single, problems, canonical)
    stubbed, stubbed_s, _ = timed_scores(pool, problems, body_pass)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    n = len(problems)
    result = {
        "n_problems": n,
        "timeout_s": args.timeout,
        "isolation": available_isolation(),
        "workers": args.workers,
        "canonical_passed_pool": sum(pooled),
        "canonical_passed_serial": sum(serial),
        "canonical_failures": [p.id for p, ok in zip(problems, pooled) if not ok],
        "pass_body_failed": n - sum(stubbed),
        "pass_body_passes": [p.id for p, ok in zip(problems, stubbed) if ok],
        "seconds_1_worker": round(serial_s, 2),
        "seconds_pool": round(pooled_s, 2),
        "seconds_pass_bodies_pool": round(stubbed_s, 2),
        "solutions_per_second_1_worker": round(n / serial_s, 2),
        "solutions_per_second_pool": round(n / pooled_s, 2),
        "pool_speedup": round(serial_s / pooled_s, 2),
        # A single worker already overlaps the judge's and the program's start-up, so it keeps
        # more than one core busy; the pool's ceiling is cores / this.
        "cores_busy_1_worker": round(serial_cpu / serial_s, 2),
        "cores_busy_pool": round(pooled_cpu / pooled_s, 2),
        "sandbox_cpu_ms_per_solution": round(1000 * serial_cpu / n, 1),
        "load_average_1min_after": load,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    print(f"HumanEval canonical solutions, {args.timeout:g} s limit, isolation={result['isolation']}")
    print(f"  passed: {sum(pooled)}/{n} with {args.workers} workers, {sum(serial)}/{n} with 1 worker")
    print(f"  bodies replaced by `pass`: {n - sum(stubbed)}/{n} failed")
    print(f"  1 worker:  {serial_s:6.1f} s  ({n / serial_s:.2f} solutions/s)")
    print(f"  {args.workers} workers: {pooled_s:6.1f} s  ({n / pooled_s:.2f} solutions/s)  "
          f"speedup x{serial_s / pooled_s:.2f}")
    print(f"  cores busy: {serial_cpu / serial_s:.2f} with 1 worker, {pooled_cpu / pooled_s:.2f} with "
          f"{args.workers}; {1000 * serial_cpu / n:.0f} ms of sandbox CPU per solution; load average {load}")
    out = Path(__file__).parent / "results" / "humaneval_pool.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  wrote {out}")


if __name__ == "__main__":
    main()
