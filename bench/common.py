"""Helpers the bench scripts share (they import it as a sibling: `python bench/<script>.py`)."""

from __future__ import annotations

import subprocess
import time

import torch


def git_sha() -> str:
    """The commit the figures were measured at, `-dirty` when the tree had changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def matmul_peak(n: int, reps: int, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of an n x n matmul (2 n^3 flops) in `dtype` over `reps` timed runs."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best
