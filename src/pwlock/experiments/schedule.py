"""Run a config's independent jobs side by side, without oversubscribing the cores.

A job is one lock of one replicate (lock seed): its training, its evaluations and every
elicitation run on it; or a replicate's policy evaluations. Jobs share nothing but the
content-addressed cache, whose per-unit file locks already make concurrent writers safe (a
unit two jobs need is computed by one, reused by the other).

Why processes of one thread: a small model's step is made of many small kernels, and torch's
second intra-op thread adds little to them. On the demo's model, one process of two threads
trained 481 examples/s; two processes of one thread, 2 x 398 (`bench/schedule.py`). So on a
CPU the workers are `threads` single-thread processes, and a job is one of them.

When fewer jobs are left than workers (the last, longest lock of a run; a suite whose other
organisms came from the cache), the idle workers' threads go to the jobs still running: each
long loop calls `use_idle_cores()` once per step, which sets its process's torch threads to the
run's thread budget divided by the jobs running now (a shared count; a job waiting for a cached
unit another job computes is not running: `idle`). Torch's thread count is per calling thread,
so the loop itself must make the call; a watcher thread could not. A job's numbers do not depend
on its thread count: a training step's loss and gradients are bitwise equal at 1 and 2 threads
(tests/test_schedule.py; by hand on SmolLM2-135M too), so results stay the same whenever the
other jobs finish.

`run_jobs` is the one entry point: any executor with a `map` over picklable jobs (a process
pool here; Ray or submitit over a shared cache later) can take its place.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, TypeVar

from tqdm.auto import tqdm

J = TypeVar("J")
R = TypeVar("R")
PR_SET_PDEATHSIG = 1


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which a container or `taskset` may
    narrow below os.cpu_count())."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Share:
    """In a worker process: the run's thread budget and its shared count of jobs running."""

    budget: int = 0
    running: Any = None  # a multiprocessing Value('i'); None in the main process


def worker_init(threads: int, budget: int, running: Any) -> None:
    """In each worker: `threads` torch threads (until `use_idle_cores` gives it more), no progress
    bars (several would interleave on one terminal; the main process shows a bar of finished
    jobs), log lines as usual."""
    tqdm.__init__ = functools.partialmethod(tqdm.__init__, disable=True)
    if sys.platform == "linux":  # die with the run: a killed run leaves no worker computing on
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    import torch

    torch.set_num_threads(threads)
    Share.budget, Share.running = budget, running


def add_running(delta: int) -> None:
    with Share.running.get_lock():
        Share.running.value += delta


def counted(fn: Callable[[J], R], job: J) -> R:
    """`fn(job)`, counted among the run's running jobs while it runs."""
    add_running(1)
    try:
        return fn(job)
    finally:
        add_running(-1)


@contextlib.contextmanager
def idle() -> Iterator[None]:
    """While a worker waits (for a cached unit another job is computing), it is not counted as
    running, so `use_idle_cores` gives its core to the jobs that are. A no-op outside a worker."""
    if Share.running is None:
        yield
        return
    add_running(-1)
    try:
        yield
    finally:
        add_running(1)


def use_idle_cores() -> None:
    """In a worker, once per step of a long loop: this process's torch threads become the run's
    budget divided by the jobs running now (at least 1), so cores a finished worker left idle
    serve the jobs still running. A no-op outside a worker (the process keeps its own threads).
    Costs a shared-int read per call and a thread-pool resize only when the share changes."""
    if Share.running is None:
        return
    import torch

    share = max(1, Share.budget // max(1, Share.running.value))
    if share != torch.get_num_threads():
        torch.set_num_threads(share)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int, threads: int = 1,
             desc: str = "jobs") -> list[R]:
    """`[fn(job) for job in jobs]`, in job order: in this process when `workers` is 1, else on
    `workers` spawned processes of `threads` torch threads each (more, from `use_idle_cores`, once
    fewer jobs than workers are left). The first job to fail raises its error here, after the jobs
    already running have finished (their units stay cached)."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    results: dict[int, R] = {}
    workers = min(workers, len(jobs))
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=worker_init,
                             initargs=(threads, workers * threads, context.Value("i", 0))) as pool:
        futures = {pool.submit(counted, fn, job): i for i, job in enumerate(jobs)}
        try:
            for future in tqdm(as_completed(futures), total=len(jobs), desc=desc, unit="job"):
                results[futures[future]] = future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [results[i] for i in range(len(jobs))]
