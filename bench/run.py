"""Every benchmark, each ratio against its target (issue #13), pass/fail, one summary.

    PWLOCK_CACHE=/tmp/pwcache python bench/run.py [--quick] [--tuned-model DIR] [--only sft,dpo,eval]

Runs, each in its own process (one at a time, so they don't share the cores):
  sft_step      ours vs TRL's SFTTrainer on SmolLM2-135M: tokens/s ratio >= 2, and our FLOP/s
                (6 x all params x tokens) >= 60% of the fp32 matmul peak measured in the same run
  dpo_step      ours vs TRL's DPOTrainer, tiny Llamas of hidden 96 and 256: tokens/s ratio >= 1.5
  batched_eval  batched greedy evaluation vs one prompt at a time, >= x10 on three inputs:
                a tuned model on arithmetic (the showcase's pi_strong; --tuned-model, else a
                stand-in made once by bench/tuned_model.py and cached), untuned SmolLM2 on
                arithmetic, untuned SmolLM2 on GSM8K chat prompts (32 new tokens)
  shared_cpu    a demo-sized training step beside one busy process, with pwlock's OpenMP setting
                (OMP_WAIT_POLICY=PASSIVE, 2 threads): >= 40% of the quiet throughput
  schedule      two single-thread processes side by side vs one two-thread process (the run's
                worker processes, experiments/schedule.py): summed throughput ratio > 1
  idle_cores    two unequal jobs on two workers: the long job's loop with `use_idle_cores` (it takes
                the finished worker's core) vs without, at two model widths: time ratio > 1
  bf16          SmolLM2 fine-tuning and generation under bf16 autocast vs fp32 (bench/bf16.py): the
                speed-ups (> 1 where the CPU has AVX512-BF16 or AMX; skipped elsewhere, where bf16 is
                emulated) and, reported beside them, what bf16 does to the loss and the correctness
A ratio whose baseline is not installed (TRL) is reported as skipped, not failed. Prints a table
and writes bench/results/summary.json (--quick: fewer steps and prompts, for a smoke run of about
a minute, into bench/results/quick/). The per-benchmark JSON files sit beside the summary.
Timings are wall-clock on a shared machine: the load average is recorded with every result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import cpu_flags, git_sha  # bench/common.py

HERE = Path(__file__).parent
PY = sys.executable
TUNED_EXAMPLES = 200

# (name, arguments) per mode; the eval inputs: (name, task, model, extra arguments)
FULL = {
    "sft": ["--warmup", "1", "--steps", "4"],
    "dpo": ["--warmup", "2", "--steps", "6"],
    "eval": ["--n", "100", "--serial-every", "5"],
    "shared_cpu": ["--seconds", "6", "--repeats", "2"],
    "schedule": ["--seconds", "6", "--repeats", "2"],
    "idle_cores": ["--repeats", "2"],
    "bf16": [],
}
QUICK = {
    "sft": ["--warmup", "1", "--steps", "1", "--batch", "4", "--matmul-reps", "2"],
    "dpo": ["--warmup", "1", "--steps", "2"],
    "eval": ["--n", "24", "--serial-every", "8"],
    "shared_cpu": ["--seconds", "2", "--repeats", "1"],
    "schedule": ["--seconds", "2", "--repeats", "1"],
    "idle_cores": ["--scale", "0.3", "--repeats", "1"],
    "bf16": ["--examples", "32", "--eval", "16", "--matmul-reps", "2"],
}


def run(script: str, args: list[str]) -> tuple[float, str]:
    """Run bench/<script> with `args`; its wall time and output (raises when it fails)."""
    t0 = time.perf_counter()
    proc = subprocess.run([PY, str(HERE / script), *args], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode:
        raise RuntimeError(f"bench/{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0, proc.stdout


def check(name: str, value: float | None, target: float, *, skipped: str | None = None, **details) -> dict:
    status = "skipped" if skipped else ("pass" if value >= target else "fail")
    return {"name": name, "value": value, "target": target, "status": status, "reason": skipped, **details}


def bench_sft(out: Path, args: list[str]) -> list[dict]:
    names = ("SFT step tokens/s, ours / TRL SFTTrainer", "SFT step FLOP/s / fp32 matmul peak (6N, all params)")
    if importlib.util.find_spec("trl") is None:
        return [check(names[0], None, 2.0, skipped="trl is not installed (pip install trl)"),
                check(names[1], None, 0.6, skipped="measured inside the TRL comparison, which needs trl")]
    seconds, text = run("sft_step.py", [*args, "--out", str(out / "sft_step.json")])
    print(text, end="")
    r = json.loads((out / "sft_step.json").read_text())
    source = {"file": "sft_step.json", "seconds": seconds}
    return [
        check(names[0], r["ratio_tokens_per_s_ours_over_trl"], 2.0, median_of_step_ratios=r["ratio_median_of_step_ratios"],
              **source),
        check(names[1], r["flops"]["ours_6N_all_params_over_peak"], 0.6,
              non_embedding=r["flops"]["ours_6N_non_embedding_over_peak"], **source),
    ]


def bench_dpo(out: Path, args: list[str]) -> list[dict]:
    if importlib.util.find_spec("trl") is None:
        return [check(f"DPO step tokens/s, ours / TRL DPOTrainer, hidden {h}", None, 1.5,
                      skipped="trl is not installed (pip install trl)") for h in (96, 256)]
    seconds, text = run("dpo_step.py", [*args, "--out", str(out / "dpo_step.json")])
    print(text, end="")
    rows = json.loads((out / "dpo_step.json").read_text())["results"]
    return [check(f"DPO step tokens/s, ours / TRL DPOTrainer, hidden {r['hidden']}",
                  r["ratio_tokens_per_s_ours_over_trl"], 1.5, median_of_step_ratios=r["ratio_median_of_step_ratios"],
                  file="dpo_step.json", seconds=seconds) for r in rows]


def tuned_model(cli) -> tuple[str | None, str | None]:
    """The tuned model's dir, or (None, why not)."""
    if cli.tuned_model:
        return str(cli.tuned_model), None
    sys.path.insert(0, str(HERE))
    from tuned_model import default_out  # bench/tuned_model.py

    path = default_out(TUNED_EXAMPLES)
    if (path / "config.json").is_file():
        return str(path), None
    if cli.quick:
        return None, f"no tuned model cached at {path}; a full run (or bench/tuned_model.py) makes it"
    print(f"making the stand-in tuned model (once, untimed): bench/tuned_model.py -> {path}", flush=True)
    run("tuned_model.py", ["--examples", str(TUNED_EXAMPLES), "--out", str(path)])
    return str(path), None


def bench_eval(out: Path, args: list[str], cli) -> list[dict]:
    results = []
    tuned, why = tuned_model(cli)
    inputs = [
        ("tuned", "tuned model (pi_strong stand-in) on arithmetic, plain prompts",
         ["--task", "arithmetic", "--plain", "--model", tuned or ""]),
        ("untuned", "untuned SmolLM2 on arithmetic, chat prompts", ["--task", "arithmetic"]),
        ("gsm8k", "untuned SmolLM2 on GSM8K chat prompts, 32 new tokens", ["--task", "gsm8k", "--max-new-tokens", "32"]),
    ]
    for key, label, extra in inputs:
        name = f"batched eval speed-up, {label}"
        if key == "tuned" and tuned is None:
            results.append(check(name, None, 10.0, skipped=why))
            continue
        file = f"batched_eval_{key}.json"
        seconds, text = run("batched_eval.py", [*args, *extra, "--out", str(out / file)])
        print(text, end="")
        r = json.loads((out / file).read_text())
        results.append(check(name, r["speedup"], 10.0, identical=r["identical_completions"], file=file,
                             seconds=seconds))
    return results


def bench_shared_cpu(out: Path, args: list[str]) -> list[dict]:
    seconds, text = run("shared_cpu.py", [*args, "--out", str(out / "shared_cpu.json")])
    print(text, end="")
    share = json.loads((out / "shared_cpu.json").read_text())["share_of_quiet"]
    return [check("training beside one busy process / quiet (2 threads, OMP_WAIT_POLICY=PASSIVE as pwlock sets)",
                  share["threads=2 wait=PASSIVE beside 1 busy"], 0.4,
                  without_passive=share["threads=2 wait=default beside 1 busy"], file="shared_cpu.json",
                  seconds=seconds)]


def bench_schedule(out: Path, args: list[str]) -> list[dict]:
    seconds, text = run("schedule.py", [*args, "--out", str(out / "schedule.json")])
    print(text, end="")
    r = json.loads((out / "schedule.json").read_text())
    return [check("two 1-thread worker processes / one 2-thread process (summed training steps/s)",
                  r["two_single_thread_processes_vs_one_two_thread_process"], 1.0, file="schedule.json",
                  seconds=seconds)]


def bench_idle_cores(out: Path, args: list[str]) -> list[dict]:
    seconds, text = run("idle_cores.py", [*args, "--out", str(out / "idle_cores.json")])
    print(text, end="")
    widths = json.loads((out / "idle_cores.json").read_text())["widths"]
    return [check(f"last job alone, without / with use_idle_cores: {name}", r["without / with"], 1.0,
                  file="idle_cores.json", seconds=seconds) for name, r in widths.items()]


def bench_bf16(out: Path, args: list[str]) -> list[dict]:
    from pwlock.train.sft import bf16_supported  # here: transformers need not load for the other benchmarks

    names = ("bf16 autocast / fp32, SmolLM2 training tokens/s", "bf16 autocast / fp32, SmolLM2 greedy generation")
    if not bf16_supported("cpu"):
        why = "no AVX512-BF16 or AMX: bf16 matmuls are emulated here, slower than fp32 (fp32 stays the default)"
        return [check(name, None, 1.0, skipped=why) for name in names]
    seconds, text = run("bf16.py", [*args, "--out", str(out / "bf16.json")])
    print(text, end="")
    r = json.loads((out / "bf16.json").read_text())
    ev = r["evaluation"]
    effect = {"correctness_" + k.replace(", ", "_").replace(" ", "_"): v["correctness"] for k, v in ev.items()}
    return [
        check(names[0], r["training"]["speedup_bf16_over_fp32"], 1.0,
              mean_loss_last_10_steps=r["training"]["mean_loss_last_10_steps"], **effect, file="bf16.json",
              seconds=seconds),
        check(names[1], r["generation"]["speedup_bf16_over_fp32"], 1.0,
              identical_completions=r["generation"]["identical_completions_vs_fp32_fp32"], file="bf16.json",
              seconds=seconds),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute (fewer steps/prompts)")
    parser.add_argument("--tuned-model", type=Path, default=None,
                        help="model dir of a tuned arithmetic model (the showcase's pi_strong); "
                             "default: a stand-in made by bench/tuned_model.py")
    parser.add_argument("--only", default="sft,dpo,eval,shared_cpu,schedule,idle_cores,bf16",
                        help="comma-separated subset of sft, dpo, eval, shared_cpu, schedule, idle_cores, bf16")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder for the JSON files (default bench/results, --quick: bench/results/quick)")
    cli = parser.parse_args()
    out = cli.results or (HERE / "results" / ("quick" if cli.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    mode = QUICK if cli.quick else FULL
    only = set(cli.only.split(","))

    machine = {"cpu": cpu_flags(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "torch_threads_default": torch.get_num_threads(), "platform": platform.platform(),
               "load_avg_at_start": os.getloadavg()}
    print(f"CPU: {machine['cpu']['model']} ({os.cpu_count()} cores); flags: "
          + ", ".join(f for f, on in machine["cpu"].get("flags", {}).items() if on)
          + f"; load average {machine['load_avg_at_start'][0]:.2f}", flush=True)
    t0 = time.perf_counter()
    checks = []
    if "sft" in only:
        checks += bench_sft(out, mode["sft"])
    if "dpo" in only:
        checks += bench_dpo(out, mode["dpo"])
    if "eval" in only:
        checks += bench_eval(out, mode["eval"], cli)
    if "shared_cpu" in only:
        checks += bench_shared_cpu(out, mode["shared_cpu"])
    if "schedule" in only:
        checks += bench_schedule(out, mode["schedule"])
    if "idle_cores" in only:
        checks += bench_idle_cores(out, mode["idle_cores"])
    if "bf16" in only:
        checks += bench_bf16(out, mode["bf16"])
    machine["load_avg_at_end"] = os.getloadavg()

    print(f"\n{'benchmark':<78} {'value':>7} {'target':>7}  status")
    for c in checks:
        value = "-" if c["value"] is None else f"{c['value']:.2f}"
        print(f"{c['name']:<78} {value:>7} {c['target']:>7.2f}  {c['status']}"
              + (f" ({c['reason']})" if c["reason"] else ""))
    total = time.perf_counter() - t0
    print(f"{sum(c['status'] == 'pass' for c in checks)} pass, {sum(c['status'] == 'fail' for c in checks)} fail, "
          f"{sum(c['status'] == 'skipped' for c in checks)} skipped in {total:.0f} s; "
          f"load average {machine['load_avg_at_start'][0]:.2f} -> {machine['load_avg_at_end'][0]:.2f}")
    summary = {"benchmark": "run", "mode": "quick" if cli.quick else "full", "pwlock_git": git_sha(),
               "seconds": total, "machine": machine, "checks": checks}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
