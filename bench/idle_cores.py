"""What the idle workers' cores give the last job of a run: two unequal jobs on two workers.

    python bench/idle_cores.py [--scale 1] [--repeats 2] [--out bench/results/idle_cores.json]

`run_jobs` starts one single-thread worker per core. When one job ends early (a cached organism,
a shorter lock), the other runs on alone; `use_idle_cores()`, called once per step by pwlock's
training and generation loops, then gives it the finished worker's thread. This runs two jobs
through `run_jobs(workers=2, threads=1)`, one of N training steps and one of 3N (N per width x --scale),
each step a demo-sized SFT step (the model of shared_cpu.py: Llama, batches of 64 D_lock
examples) at two widths (the demo's hidden 96 x 4 layers, and hidden 384 x 8 layers, nearer a
small pretrained LM's matmuls), once with the long job calling `use_idle_cores()` each step and
once without; interleaved, median of repeats. Prints the long job's loop time (set-up excluded)
and the ratio without / with (> 1: the idle core helps). Time it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (hidden, layers, the short job's steps: 6 and 11 s at one thread on an AMD EPYC core)
WIDTHS = {"demo (hidden 96, 4 layers)": (96, 4, 60), "wide (hidden 384, 8 layers)": (384, 8, 6)}


def train(job: tuple[int, int, int, bool]) -> float:
    """`steps` SFT steps of a (hidden, layers) model; calls `use_idle_cores` each step if `share`."""
    steps, hidden, layers, share = job
    from common import demo_training  # bench/common.py

    from pwlock.experiments.schedule import use_idle_cores
    from pwlock.train.sft import batch_loss

    model, batches, optimizer = demo_training(hidden, layers, examples=256)
    start = time.perf_counter()
    for i in range(steps):
        if share:
            use_idle_cores()
        batch_loss(model, batches[i % len(batches)]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def long_job(steps: int, hidden: int, layers: int, share: bool) -> float:
    """Seconds the long job's loop took (its process start and set-up excluded: the same either way)."""
    from pwlock.experiments.schedule import run_jobs

    jobs = [(steps, hidden, layers, share), (3 * steps, hidden, layers, share)]
    return run_jobs(train, jobs, workers=2, threads=1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies each width's step count")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the median is kept")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "idle_cores.json")
    args = parser.parse_args()
    result: dict[str, dict[str, float]] = {}
    for name, (hidden, layers, steps) in WIDTHS.items():
        steps = max(1, round(steps * args.scale))
        times: dict[str, list[float]] = {"without use_idle_cores": [], "with use_idle_cores": []}
        for _ in range(args.repeats):
            for label, share in (("without use_idle_cores", False), ("with use_idle_cores", True)):
                times[label].append(long_job(steps, hidden, layers, share))
                print(f"{name}, {label}: long job {times[label][-1]:.1f} s", flush=True)
        median = {label: statistics.median(v) for label, v in times.items()}
        ratio = median["without use_idle_cores"] / median["with use_idle_cores"]
        result[name] = {"steps": [steps, 3 * steps], "without / with": ratio,
                        **{f"long job {label} (s)": v for label, v in median.items()}}
        print(f"{name}: without / with = x{ratio:.2f}\n", flush=True)
    summary = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "load_avg_1min": os.getloadavg()[0], "widths": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
