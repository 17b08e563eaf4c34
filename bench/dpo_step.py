"""Tokens per second of one DPO training step: ours (the loop body of pwlock.elicit.dpo) vs
TRL's DPOTrainer, on the same tiny Llama, the same 32 pairs and the same AdamW.

    python bench/dpo_step.py [--warmup 2] [--steps 6]

Ours, per step: tokenize + collate the batch, reference forward under no_grad, policy
forward on [chosen..., rejected...], `dpo_loss`, backward, grad clip, AdamW step.
TRL, per step: what `DPOTrainer.train()` does between two `on_step_end` callbacks with a
32-pair dataset and batch size 32 (so one step per epoch): collate pre-tokenized rows,
policy + reference forward through its fused LM head, metrics, backward, clip, AdamW
step, scheduler step. Our steps run inside that callback, outside TRL's timed interval,
so the two alternate step by step and share whatever load the machine has. Both start
from copies of the same policy and reference.

Tokens per step: the non-pad tokens (prompt + completion + EOS) of the 2 x 32 sequences,
counted on each side's own batch; the script checks both batches hold the same ids.
Writes bench/results/dpo_step.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import accelerate
import datasets
import torch
import transformers
import trl
from common import git_sha  # bench/common.py
from transformers import TrainerCallback

from pwlock.elicit.dpo import frozen_copy
from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS
from pwlock.models import build_model, build_tokenizer
from pwlock.tasks import FunctionComposition
from pwlock.train.data import collate
from pwlock.train.dpo import Pair, batch_dpo_loss
from pwlock.train.sft import TrainArgs, make_optimizer
from pwlock.types import Example

THREADS = 2
N_PAIRS = 32
BETA = 0.1
LR = 3e-4  # the first of rl_function_composition.yaml's dpo_lrs
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
WARMUP_STEPS = 2
TIMED_STEPS = 6
SIZES = [  # (hidden, layers, heads): the function-composition config's model, and a larger one
    (96, 4, 4),
    (256, 4, 4),
]
OUT = Path(__file__).parent / "results" / "dpo_step.json"


def make_pairs(task: FunctionComposition) -> list[Pair]:
    """Chosen: the right answer; rejected: the next problem's answer."""
    problems = task.problems()[: N_PAIRS + 1]
    return [Pair(task.prompt(p, None), p.answer, q.answer) for p, q in zip(problems, problems[1:])]


def count_tokens(attention_mask: torch.Tensor) -> int:
    return int(attention_mask.sum())


class OurStep:
    """One step of the loop body of `pwlock.elicit.dpo.dpo` (the same calls), timed."""

    def __init__(self, policy, reference, tokenizer, pairs) -> None:
        self.args = TrainArgs(epochs=1, batch_size=N_PAIRS, lr=LR, weight_decay=WEIGHT_DECAY, grad_clip=GRAD_CLIP)
        self.optimizer = make_optimizer(policy, self.args)
        self.policy, self.reference, self.tokenizer, self.pairs = policy.train(), reference, tokenizer, pairs
        self.steps: list[float] = []
        self.fwd_bwd: list[float] = []

    def __call__(self) -> None:
        policy, reference, tokenizer, batch, optimizer = self.policy, self.reference, self.tokenizer, self.pairs, self.optimizer
        t0 = time.perf_counter()
        loss = batch_dpo_loss(policy, reference, tokenizer, batch, beta=BETA)
        loss.backward()
        t1 = time.perf_counter()
        if self.args.grad_clip:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), self.args.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        self.steps.append(t2 - t0)
        self.fwd_bwd.append(t1 - t0)


class Interleave(TrainerCallback):
    """Times TRL's steps (between consecutive `on_step_end`s) and runs one of ours after
    each, outside TRL's timed interval, so both see the same load on a shared machine."""

    def __init__(self, ours: OurStep) -> None:
        self.ours = ours
        self.steps: list[float] = []
        self.ready = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.ready = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self.ready)
        self.ours()
        self.ready = time.perf_counter()


def bench(policy, reference, tokenizer, pairs, out_dir: Path, warmup: int, steps: int) -> tuple[dict, dict]:
    """(ours, TRL): step times, forward+backward times, tokens per step, token ids."""
    ours = OurStep(copy.deepcopy(policy), copy.deepcopy(reference), tokenizer, pairs)
    dataset = datasets.Dataset.from_dict(
        {"prompt": [p.prompt for p in pairs], "chosen": [p.chosen for p in pairs],
         "rejected": [p.rejected for p in pairs]}
    )
    config = trl.DPOConfig(
        output_dir=str(out_dir), report_to=[], use_cpu=True, bf16=False, disable_tqdm=True,
        save_strategy="no", logging_strategy="no", beta=BETA, loss_type=["sigmoid"], max_length=None,
        per_device_train_batch_size=N_PAIRS, max_steps=warmup + steps,
        learning_rate=LR, weight_decay=WEIGHT_DECAY, max_grad_norm=GRAD_CLIP, optim="adamw_torch",
        lr_scheduler_type="constant", warmup_steps=0, dataloader_num_workers=0, seed=0,
        activation_checkpointing=False,  # TRL configs default to recomputing activations; ours keeps them
    )
    timer = Interleave(ours)
    trainer = trl.DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(reference), args=config,
                             train_dataset=dataset, processing_class=tokenizer, callbacks=[timer])
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])

    inner: list[float] = []
    training_step = trainer.training_step

    def timed_training_step(*args, **kwargs):
        t0 = time.perf_counter()
        out = training_step(*args, **kwargs)
        inner.append(time.perf_counter() - t0)
        return out

    trainer.training_step = timed_training_step
    trainer.train()

    examples = [Example(p.prompt, p.chosen) for p in pairs] + [Example(p.prompt, p.rejected) for p in pairs]
    our_batch = collate(tokenizer, examples)
    w = warmup
    return (
        {"steps": ours.steps[w:], "fwd_bwd": ours.fwd_bwd[w:], "tokens": count_tokens(our_batch["attention_mask"]),
         "input_ids": our_batch["input_ids"]},
        {"steps": timer.steps[w:], "fwd_bwd": inner[w:], "tokens": count_tokens(trl_batch["attention_mask"]),
         "input_ids": trl_batch["input_ids"]},
    )


def load() -> float:
    return os.getloadavg()[0]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--warmup", type=int, default=WARMUP_STEPS, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=TIMED_STEPS, help="timed steps")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON results file")
    return parser.parse_args()


def main() -> None:
    cli = parse_args()
    torch.set_num_threads(THREADS)
    os.environ.setdefault("TQDM_DISABLE", "1")
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    task = FunctionComposition(n_problems=500, seed=0)
    tokenizer = build_tokenizer(task.vocabulary + [TOY_PASSWORD, *TOY_WRONG_PASSWORDS])
    pairs = make_pairs(task)

    loads = [load()]
    rows = []
    for hidden, layers, heads in SIZES:
        policy = build_model(tokenizer, hidden_size=hidden, layers=layers, heads=heads, seed=0)
        reference = frozen_copy(policy)
        n_params = sum(p.numel() for p in policy.parameters())
        ours, theirs = bench(policy, reference, tokenizer, pairs, Path("/tmp") / f"pwlock_bench_dpo_trl_{hidden}",
                              cli.warmup, cli.steps)
        loads.append(load())
        assert torch.equal(ours["input_ids"], theirs["input_ids"]), "both sides must train on the same token ids"
        assert ours["tokens"] == theirs["tokens"]
        tokens = ours["tokens"]
        row = {"hidden": hidden, "layers": layers, "heads": heads, "params": n_params,
               "pairs": N_PAIRS, "tokens_per_step": tokens, "padded_width": ours["input_ids"].shape[1]}
        for name, r in (("ours", ours), ("trl", theirs)):
            step = statistics.median(r["steps"])
            row[name] = {
                "step_s_median": step,
                "step_s_min": min(r["steps"]),
                "step_s_all": r["steps"],
                "tokens_per_s": tokens / step,
                "tokens_per_s_best": tokens / min(r["steps"]),
                "fwd_bwd_s_median": statistics.median(r["fwd_bwd"]),
            }
        row["ratio_tokens_per_s_ours_over_trl"] = row["ours"]["tokens_per_s"] / row["trl"]["tokens_per_s"]
        # the same tokens every step: the median of per-step time ratios (steps alternate)
        row["ratio_median_of_step_ratios"] = statistics.median(
            t / o for t, o in zip(theirs["steps"], ours["steps"]))
        row["ratio_best_tokens_per_s_ours_over_trl"] = row["ours"]["tokens_per_s_best"] / row["trl"]["tokens_per_s_best"]
        row["ratio_fwd_bwd_ours_over_trl_speed"] = row["trl"]["fwd_bwd_s_median"] / row["ours"]["fwd_bwd_s_median"]
        rows.append(row)

    shared = max(loads) > 2
    notes = [
        "ratio > 1 means ours processes more tokens per second than TRL. tokens_per_s uses the median step; "
        "tokens_per_s_best the fastest step, which is less sensitive to other processes on a shared machine.",
        "Ours tokenizes and collates the pairs inside every step (pair_logprobs); TRL tokenizes the dataset once "
        "in DPOTrainer.__init__ and only collates per step. Tokenization is counted in our step time.",
        "Ours and TRL's steps alternate: each of ours runs inside TRL's on_step_end callback and is excluded "
        "from TRL's interval. TRL's step is timed between consecutive on_step_end callbacks of trainer.train(). With 32 pairs and batch "
        "32 every step is a whole epoch, so it also carries per-epoch overhead (new dataloader iterator, sampler, "
        "on_epoch_end, _maybe_log_save_evaluate), plus the metrics DPOTrainer computes each step (entropy, mean "
        "logits, top-1 accuracy, rewards; several .item() syncs), which ours does not compute. fwd_bwd_s_median "
        "isolates the forward(s) + backward: for TRL, the time inside Trainer.training_step; for ours, from "
        "tokenization to loss.backward().",
        "TRL runs with bf16=False (its default is bf16=True, which on CPU autocasts the reference forward to bf16) "
        "and optim='adamw_torch' (its default on torch>=2.8 is adamw_torch_fused), so both use torch.optim.AdamW "
        "in fp32. HF Trainer exempts biases and norm weights from weight decay; ours decays all parameters; the "
        "cost is the same.",
        "Both models are from-scratch Llamas with no dropout; both runs start from identical copies of the policy "
        "and the frozen reference (a copy of the policy).",
    ]
    if shared:
        notes.append(f"The machine was shared: 1-minute load average up to {max(loads):.2f} on {os.cpu_count()} "
                     "cores while measuring (other engineers' processes), so absolute figures are noisy.")
    result = {
        "benchmark": "dpo_step",
        "settings": {
            "threads": THREADS, "pairs": N_PAIRS, "beta": BETA, "lr": LR, "weight_decay": WEIGHT_DECAY,
            "grad_clip": GRAD_CLIP, "optimizer": "torch.optim.AdamW (betas 0.9/0.999, eps 1e-8), fp32",
            "warmup_steps_excluded": cli.warmup, "timed_steps": cli.steps, "statistic": "median",
            "task": "function_composition (n_problems=500, seed=0), prompts without password",
            "token_count": "non-pad tokens of the 2 x pairs chosen+rejected sequences (prompt + completion + EOS)",
        },
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__,
            "accelerate": accelerate.__version__, "datasets": datasets.__version__, "pwlock_git": git_sha(),
        },
        "machine": {"cpu_count": os.cpu_count(), "load_avg_1min_samples": loads, "shared": shared,
                    "platform": platform.platform()},
        "results": rows,
        "notes": notes,
    }
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'model':>10} {'tok/step':>8} {'ours tok/s':>11} {'TRL tok/s':>10} {'ratio':>6} {'best ratio':>10} "
          f"{'ours fwd+bwd':>13} {'TRL fwd+bwd':>12}")
    for r in rows:
        print(f"{'h{} L{}'.format(r['hidden'], r['layers']):>10} {r['tokens_per_step']:>8} "
              f"{r['ours']['tokens_per_s']:>11.0f} {r['trl']['tokens_per_s']:>10.0f} "
              f"{r['ratio_tokens_per_s_ours_over_trl']:>6.2f} {r['ratio_best_tokens_per_s_ours_over_trl']:>10.2f} "
              f"{r['ours']['fwd_bwd_s_median'] * 1e3:>11.1f}ms {r['trl']['fwd_bwd_s_median'] * 1e3:>10.1f}ms")
    print(f"load average samples: {', '.join(f'{x:.2f}' for x in loads)}; wrote {cli.out}")


if __name__ == "__main__":
    main()
