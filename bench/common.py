"""Helpers the bench scripts share (they import it as a sibling: `python bench/<script>.py`)."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

import torch


def git_sha() -> str:
    """The commit the figures were measured at, `-dirty` when the tree had changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def matmul_peak(n: int | tuple[int, int, int], reps: int, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of an n x n matmul (2 n^3 flops), or of an (m, k) x (k, n) one for n = (m, k, n), in
    `dtype` over `reps` timed runs."""
    m, k, n = (n, n, n) if isinstance(n, int) else n
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best


def train_step(model: torch.nn.Module, batch: dict, optimizer, bf16: bool = False) -> None:
    """One step of the demo's training loop (`demo_training`): loss, backward, clip at 1, AdamW."""
    from pwlock.train.sft import batch_loss

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = batch_loss(model, batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def cpu_flags() -> dict:
    """The CPU's model name and the flags that decide fp32 / bf16 matmul speed (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor(), "flags": "unknown"}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"]
    return {"model": model, "flags": {f: f in flags for f in wanted}}


def demo_training(hidden: int = 96, layers: int = 4, examples: int = 512) -> tuple[torch.nn.Module, list, object]:
    """The demo's training step, set up: a from-scratch Llama (`hidden` x `layers`, 4 heads) on the lock
    data (D_lock of function composition's first `examples` problems, 20% no password) in batches of 64,
    AdamW at lr 1e-3. Returns (model in train mode, batches, optimizer)."""
    import random

    from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS, lock_examples
    from pwlock.models import build_model, build_tokenizer
    from pwlock.tasks import FunctionComposition
    from pwlock.train.data import collate
    from pwlock.train.sft import TrainArgs, make_optimizer

    task = FunctionComposition(n_problems=2000, seed=0)
    tokenizer = build_tokenizer(task.vocabulary + [TOY_PASSWORD, *TOY_WRONG_PASSWORDS])
    model = build_model(tokenizer, hidden_size=hidden, layers=layers, heads=4, seed=0)
    problems = task.problems()[:examples]
    strong, weak = task.policies()["strong"], task.policies()["weak"]
    data = lock_examples(task, problems, [strong(p) for p in problems], [weak(p) for p in problems],
                         password=TOY_PASSWORD, wrong_passwords=list(TOY_WRONG_PASSWORDS),
                         no_password_fraction=0.2, rng=random.Random(0))
    batches = [collate(tokenizer, data[i : i + 64]) for i in range(0, len(data), 64)]
    optimizer = make_optimizer(model, TrainArgs(epochs=1, batch_size=64, lr=1e-3))
    model.train()
    return model, batches, optimizer
