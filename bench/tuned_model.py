"""A stand-in for the SmolLM2 showcase's pi_strong, for bench/batched_eval.py's tuned-model input.

    PWLOCK_CACHE=/tmp/pwcache python bench/tuned_model.py [--out DIR] [--examples 200]

The showcase (configs/smollm2_arithmetic.yaml) makes pi_strong by fine-tuning SmolLM2-135M-Instruct
(plain prompts) on the arithmetic task's reference worked solutions, 500 examples x 2 epochs.
This does the same on fewer examples (default 200 x 1 epoch, a couple of minutes on 2 cores),
enough for what the benchmark needs: a model that answers in the solutions' short format and
stops at EOS. It trains on the last problems of the task's list, the benchmark evaluates the
first ones. Prints the output folder; reuses it if present.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import transformers

from pwlock.models.pretrained import cache_root, load_model
from pwlock.tasks.arithmetic import Arithmetic
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example

MODEL = "packaged:smollm2-135m-instruct"


def default_out(examples: int) -> Path:
    return cache_root() / "bench" / f"smollm2-arithmetic-tuned-{examples}"


def make(out: Path, examples: int, threads: int | None = None) -> Path:
    if (out / "config.json").is_file():
        return out
    if threads is not None:
        torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    model, tokenizer = load_model(MODEL, dtype="float32", device="cpu", chat_template=False)
    task = Arithmetic(n_problems=1000)
    data = [Example(task.prompt(p, None), p.answer) for p in task.problems()[-examples:]]  # the bench evaluates the first ones
    sft(model, tokenizer, lambda epoch: data, TrainArgs(epochs=1, batch_size=8, lr=1e-4), desc="tune")
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="reference solutions to fine-tune on, 1 epoch")
    parser.add_argument("--out", type=Path, default=None, help="model dir (default: under $PWLOCK_CACHE/bench)")
    cli = parser.parse_args()
    print(make(cli.out or default_out(cli.examples), cli.examples))


if __name__ == "__main__":
    main()
