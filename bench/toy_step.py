"""Where a toy lock's training step spends its time, and so the least time the toy suite can build in.

    python bench/toy_step.py [--steps 40] [--out bench/results/toy_step.json]

`pwlock organisms build --suite toy` is a few dozen thousand training steps of one model shape
(Llama, hidden 96, 4 layers, batches of 64 function-composition examples), on single-thread worker
processes. This times that step at one thread (bench/common.py's demo_training) and profiles it:
the share of its time in matrix multiplies, and their FLOP/s against the fp32 matmul peak of one
thread measured in the same run (an n x n matmul, and the step's own largest shape), and what the
step's multiplies (their FLOPs counted by the profiler) would take at that peak: no fp32 change short
of doing fewer of them makes a build of S such steps on W single-thread workers faster than
S x that time / W. It also times the same step under bf16 autocast (where the CPU has AVX512-BF16
or AMX), which changes the numbers (README, bf16).
Time it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from common import cpu_flags, demo_training, git_sha, matmul_peak, train_step  # bench/common.py
from torch.profiler import ProfilerActivity, profile

from pwlock.train.sft import bf16_supported

HERE = Path(__file__).resolve().parent
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def steps_per_s(model, batches, optimizer, steps: int, bf16: bool = False) -> float:
    start = time.perf_counter()
    for i in range(steps):
        train_step(model, batches[i % len(batches)], optimizer, bf16)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "toy_step.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the build's workers are single-thread processes

    model, batches, optimizer = demo_training()
    tokens = int(batches[0]["input_ids"].numel())
    steps_per_s(model, batches, optimizer, 5)  # warm-up
    fp32 = steps_per_s(model, batches, optimizer, args.steps)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        steps_per_s(model, batches, optimizer, args.steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm = [e for e in events if e.key in MATMULS]
    mm_time, mm_flops = sum(e.self_cpu_time_total for e in mm), sum(e.flops for e in mm)
    bf16 = steps_per_s(model, batches, optimizer, args.steps, bf16=True) if bf16_supported("cpu") else None
    hidden, inter = model.config.hidden_size, model.config.intermediate_size
    peak = matmul_peak(2048, 5)
    step_peak = matmul_peak((tokens, hidden, inter), 20)  # the MLP's up projection, its largest matmul
    result = {
        "benchmark": "toy_step",
        "settings": {"model": f"llama hidden {hidden}, {model.config.num_hidden_layers} layers, MLP {inter}",
                     "batch_tokens": tokens, "threads": 1, "timed_steps": args.steps},
        "machine": {"cpu": cpu_flags(), "platform": platform.platform()},
        "pwlock_git": git_sha(),
        "steps_per_s_fp32": fp32,
        "steps_per_s_bf16_autocast": bf16,
        "bf16_over_fp32": bf16 / fp32 if bf16 else None,
        "matmul_share_of_step": mm_time / total,
        "matmul_flops_per_s": mm_flops / (mm_time / 1e6),
        "peak_flops_per_s_n2048": peak,
        "peak_flops_per_s_step_shape": step_peak,
        "matmul_over_peak": mm_flops / (mm_time / 1e6) / peak,
        "matmul_gflop_per_step": mm_flops / args.steps / 1e9,
        "step_ms_fp32": 1000 / fp32,
        "matmul_ms_per_step_at_peak": 1000 * mm_flops / args.steps / peak,
        "notes": "matmul_share_of_step: self CPU time of mm/addmm/bmm over all ops' self time, under the profiler "
                 "(which slows the small ops most). matmul_ms_per_step_at_peak: the step's matmul FLOPs (counted by "
                 "the profiler) at peak_flops_per_s_n2048: a build of S steps on W single-thread workers takes at "
                 "least S x that / W in fp32, whatever else is made faster.",
    }
    print(f"toy step, 1 thread: {fp32:.1f} steps/s fp32" + (f", {bf16:.1f} bf16 autocast (x{bf16 / fp32:.2f})"
                                                           if bf16 else ", bf16 not fast on this CPU"))
    print(f"matmuls: {result['matmul_gflop_per_step']:.2f} GFLOP a step, {result['matmul_ms_per_step_at_peak']:.1f} ms at "
          f"the peak, of the step's {1000 / fp32:.1f} ms")
    print(f"matmuls: {result['matmul_share_of_step']:.0%} of the step at {result['matmul_flops_per_s'] / 1e9:.1f} "
          f"GFLOP/s; one-thread fp32 peak {peak / 1e9:.1f} GFLOP/s (n = 2048), {step_peak / 1e9:.1f} at the "
          f"step's ({tokens} x {hidden}) x ({hidden} x {inter})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
