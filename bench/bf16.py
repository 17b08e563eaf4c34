"""bf16 autocast vs fp32 on this CPU: speed of training and generation, and what it does to the numbers.

    PWLOCK_CACHE=/tmp/pwcache TQDM_DISABLE=1 python bench/bf16.py [--examples 200] [--eval 200]

Issue #13 asks to offer bf16 autocast where the CPU has fast bf16 matmuls (AVX512-BF16, AMX),
measure its speed-up and its effect on the loss curve and the numbers, and keep fp32 the
default unless the effect is negligible. One run measures, on SmolLM2-135M-Instruct:

1. matmul peak: the best FLOP/s of an n x n matmul in fp32 and in bf16 (inputs already bf16).
2. training: the recipe of bench/tuned_model.py (the SmolLM2 showcase's pi_strong, shortened):
   two copies of the model fine-tune on the same arithmetic reference solutions, batch 8,
   AdamW lr 1e-4, one epoch, one in fp32 and one under bf16 autocast (`TrainArgs(bf16=True)`:
   weights, gradients and AdamW stay fp32), the two alternating step by step so they share the
   machine's load. Per-step losses and times of both; tokens/s ratio.
3. the numbers: each trained copy is evaluated greedily on the first --eval problems (the
   trained ones are the last --examples of the task's list), with fp32 generation and with
   generation under bf16 autocast: correctness of each of the four, the fraction of identical
   completions, and generation time (bf16 / fp32 on the fp32-trained model). The control: a
   third copy trained in fp32 on the same examples in another order (seed 1), evaluated in
   fp32: how far the numbers move when only the data order changes, the yardstick for bf16's.

Writes bench/results/bf16.json (--out). The CPU's flags are recorded: on a CPU without
AVX512-BF16 or AMX, torch emulates bf16 matmuls and bf16 is far slower than fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch
import transformers
from common import cpu_flags, git_sha, matmul_peak  # bench/common.py

from pwlock.evaluate import evaluate
from pwlock.models.pretrained import load_model
from pwlock.tasks.arithmetic import Arithmetic
from pwlock.train.data import pack
from pwlock.train.sft import TrainArgs, batch_loss, bf16_supported, make_optimizer
from pwlock.types import Example

MODEL = "packaged:smollm2-135m-instruct"
OUT = Path(__file__).parent / "results" / "bf16.json"


def autocast(on: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()


class Side:
    """One copy of the model and its optimizer, trained in fp32 or under bf16 autocast."""

    def __init__(self, model, args: TrainArgs) -> None:
        self.model, self.args = model.train(), args
        self.optimizer = make_optimizer(model, args)
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def step(self, tokenizer, rows: list[Example]) -> None:
        t0 = time.perf_counter()
        batch = pack(tokenizer, rows)
        with autocast(self.args.bf16):  # what sft() does: forward and loss under autocast, backward outside
            loss = batch_loss(self.model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.seconds.append(time.perf_counter() - t0)
        self.losses.append(loss.item())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=MODEL, help="model dir, hub id or packaged: name")
    parser.add_argument("--examples", type=int, default=200, help="reference solutions trained on, one epoch")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate")
    parser.add_argument("--eval", type=int, default=200, help="problems evaluated (the task's first ones)")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--matmul-n", type=int, default=2048, help="size of the peak matmul")
    parser.add_argument("--matmul-reps", type=int, default=5, help="timed matmuls per dtype")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON results file")
    return parser.parse_args()


def main() -> None:
    cli = parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(0)

    peaks = {str(d).removeprefix("torch."): matmul_peak(cli.matmul_n, cli.matmul_reps, d)
             for d in (torch.float32, torch.bfloat16)}
    print(f"matmul {cli.matmul_n}: fp32 {peaks['float32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bfloat16'] / 1e9:.0f} "
          f"GFLOP/s (x{peaks['bfloat16'] / peaks['float32']:.2f}); bf16_supported: {bf16_supported('cpu')}", flush=True)

    model, tokenizer = load_model(cli.model, dtype="float32", device="cpu", chat_template=False)
    task = Arithmetic(n_problems=1000)
    problems = task.problems()
    train = [Example(task.prompt(p, None), p.answer) for p in problems[-cli.examples:]]
    evaluated = problems[: cli.eval]
    assert cli.eval + cli.examples <= len(problems), "training and evaluation problems overlap"

    args = TrainArgs(epochs=1, batch_size=cli.batch, lr=cli.lr)
    sides = {"fp32": Side(copy.deepcopy(model), args),
             "bf16": Side(copy.deepcopy(model), dataclasses.replace(args, bf16=True)),
             "fp32 reshuffled": Side(model, args)}  # the control: what another data order alone does
    batches = [train[i : i + cli.batch] for i in range(0, len(train), cli.batch)]
    shuffled = random.Random(1).sample(train, len(train))
    control = [shuffled[i : i + cli.batch] for i in range(0, len(train), cli.batch)]
    tokens = [int((pack(tokenizer, rows)["example"] >= 0).sum()) for rows in batches]  # non-pad tokens
    for k, rows in enumerate(batches):
        for name in ("fp32", "bf16") if k % 2 == 0 else ("bf16", "fp32"):  # alternate who goes first
            sides[name].step(tokenizer, rows)
        sides["fp32 reshuffled"].step(tokenizer, control[k])
        print(f"step {k + 1}/{len(batches)}: loss fp32 {sides['fp32'].losses[-1]:.4f} "
              f"bf16 {sides['bf16'].losses[-1]:.4f}", flush=True)

    w = cli.warmup
    timed_tokens = sum(tokens[w:])
    training = {name: {"losses": s.losses, "step_s": s.seconds} for name, s in sides.items()}
    for name in ("fp32", "bf16"):
        training[name]["tokens_per_s"] = timed_tokens / sum(sides[name].seconds[w:])
    rel = [abs(b - a) / abs(a) for a, b in zip(sides["fp32"].losses, sides["bf16"].losses)]
    training["speedup_bf16_over_fp32"] = training["bf16"]["tokens_per_s"] / training["fp32"]["tokens_per_s"]
    training["median_step_ratio"] = statistics.median(
        f / b for f, b in zip(sides["fp32"].seconds[w:], sides["bf16"].seconds[w:]))
    training["loss_relative_difference"] = {"max": max(rel), "mean": sum(rel) / len(rel), "first_step": rel[0],
                                            "last_step": rel[-1]}
    # The control sees other batches at each step, so compare the curves' shape: the mean loss of the
    # last ten steps of each side, against fp32's.
    tail = {name: statistics.mean(s.losses[-10:]) for name, s in sides.items()}
    training["mean_loss_last_10_steps"] = tail

    evaluation = {}
    for trained, side in sides.items():
        side.model.eval()
        for gen in ("fp32", "bf16") if trained != "fp32 reshuffled" else ("fp32",):
            t0 = time.perf_counter()
            with torch.no_grad(), autocast(gen == "bf16"):
                result = evaluate(side.model, tokenizer, task, evaluated, password=None, max_new_tokens=48)
            evaluation[f"trained {trained}, generated {gen}"] = {
                "correctness": result.correctness, "seconds": time.perf_counter() - t0,
                "completions": result.completions}
            print(f"trained {trained}, generated {gen}: correctness {result.correctness:.3f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    ref = evaluation["trained fp32, generated fp32"]

    def same(key: str) -> float:
        return sum(a == b for a, b in zip(ref["completions"], evaluation[key]["completions"])) / cli.eval

    generation = {
        "speedup_bf16_over_fp32": ref["seconds"] / evaluation["trained fp32, generated bf16"]["seconds"],
        "identical_completions_vs_fp32_fp32": {k: same(k) for k in evaluation},
    }
    for v in evaluation.values():
        del v["completions"]

    result = {
        "benchmark": "bf16",
        "settings": {"model": cli.model, "task": "arithmetic (1000 problems), plain prompts, no password",
                     "examples": cli.examples, "batch": cli.batch, "lr": cli.lr, "epochs": 1,
                     "warmup_steps_excluded": w, "eval_problems": cli.eval, "max_new_tokens": 48,
                     "torch_threads": torch.get_num_threads()},
        "machine": {"cpu": cpu_flags(), "cpu_count": os.cpu_count(), "load_avg_1min_end": os.getloadavg()[0],
                    "platform": platform.platform(), "bf16_supported": bf16_supported("cpu")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "pwlock_git": git_sha()},
        "matmul_peak_flops": peaks, "matmul_n": cli.matmul_n,
        "matmul_speedup_bf16_over_fp32": peaks["bfloat16"] / peaks["float32"],
        "training": training, "evaluation": evaluation, "generation": generation,
    }
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text(json.dumps(result, indent=1) + "\n")
    diff = training["loss_relative_difference"]
    print(f"training tokens/s bf16 / fp32: x{training['speedup_bf16_over_fp32']:.2f} (median step ratio "
          f"x{training['median_step_ratio']:.2f}); loss relative difference max {diff['max']:.4f}, "
          f"mean {diff['mean']:.4f}; mean loss of the last 10 steps "
          + ", ".join(f"{k} {v:.4f}" for k, v in tail.items()))
    print(f"generation bf16 / fp32: x{generation['speedup_bf16_over_fp32']:.2f}; identical completions "
          + ", ".join(f"{k}: {v:.3f}" for k, v in generation["identical_completions_vs_fp32_fp32"].items()))
    print(f"wrote {cli.out}")


if __name__ == "__main__":
    main()
