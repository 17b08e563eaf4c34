"""Why a run's locks go to single-thread worker processes: aggregate training throughput on the cores.

    python bench/schedule.py [--seconds 6] [--repeats 2] [--out bench/results/schedule.json]

Trains the demo's model on demo-sized batches (the worker of shared_cpu.py: Llama, hidden 96,
4 layers, batches of 64 D_lock examples) in three conditions, interleaved, median of repeats:
one process of 2 torch threads (what a run did before the scheduler), one process of 1 thread
alone, and two processes of 1 thread side by side (what `experiments/schedule.py` does with
two locks on two cores). All with pwlock's OMP_WAIT_POLICY=PASSIVE. Prints steps/s and the
ratio of the side-by-side pair's summed throughput to the 2-thread process's (target: > 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "shared_cpu.py"


def measure(threads: int, processes: int, seconds: float) -> float:
    """Summed steps/s of `processes` concurrent workers of `threads` threads each."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    procs = [subprocess.Popen([sys.executable, str(WORKER), "--worker", "--seconds", str(seconds)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    return sum(json.loads(o.strip().splitlines()[-1])["steps_per_s"] for o in outs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the median is kept")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "schedule.json")
    args = parser.parse_args()
    conditions = {"1 process x 2 threads": (2, 1), "1 process x 1 thread": (1, 1), "2 processes x 1 thread": (1, 2)}
    rates: dict[str, list[float]] = {name: [] for name in conditions}
    for _ in range(args.repeats):
        for name, (threads, processes) in conditions.items():
            rates[name].append(measure(threads, processes, args.seconds))
            print(f"{name}: {rates[name][-1]:.1f} steps/s", flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    ratio = median["2 processes x 1 thread"] / median["1 process x 2 threads"]
    result = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "load_avg_1min": os.getloadavg()[0], "steps_per_s": median,
              "two_single_thread_processes_vs_one_two_thread_process": ratio}
    print(f"\ntwo single-thread processes / one two-thread process: x{ratio:.2f} (target > 1)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
