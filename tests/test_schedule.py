"""The scheduler: job order kept, a worker's error raised in the caller, one torch thread per worker
while every worker has a job, and the idle workers' threads to the jobs left."""

import pytest

from pwlock.errors import ConfigError
from pwlock.experiments.schedule import run_jobs


def square_or_fail(x: int) -> tuple[int, int]:
    import torch

    if x == 3:
        raise ConfigError("job 3 is bad")
    return x * x, torch.get_num_threads()


def test_worker_processes_keep_job_order_and_use_their_threads():
    assert run_jobs(square_or_fail, [5, 1, 4], workers=1) == [(25, square_or_fail(0)[1]), (1, square_or_fail(0)[1]),
                                                             (16, square_or_fail(0)[1])]
    assert run_jobs(square_or_fail, [5, 1, 4, 2], workers=2, threads=1) == [(25, 1), (1, 1), (16, 1), (4, 1)]


def test_a_failing_job_raises_its_own_error_in_the_caller():
    with pytest.raises(ConfigError, match="job 3 is bad"):
        run_jobs(square_or_fail, [1, 2, 3, 4], workers=2)


def threads_while_the_other_job_runs_and_after(job: tuple[str, str]) -> tuple[int, int]:
    """Job "short" waits until "long" has seen both jobs running, then ends; job "long" reports its
    torch threads then and once "short" has ended (polling `use_idle_cores` as a training loop does)."""
    import time
    from pathlib import Path

    import torch

    from pwlock.experiments.schedule import Share, use_idle_cores

    role, folder = job
    seen_both = Path(folder) / "long-saw-both"
    deadline = time.monotonic() + 60
    if role == "short":
        while not seen_both.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0, 0
    while Share.running.value < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    use_idle_cores()
    during = torch.get_num_threads()
    seen_both.touch()
    while Share.running.value > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    use_idle_cores()
    return during, torch.get_num_threads()


def test_a_job_left_alone_takes_the_finished_workers_threads(tmp_path):
    """Two workers of 1 thread: while both run, each has 1; once one has finished, the other, at its
    next `use_idle_cores`, has the run's 2 (the budget is workers x threads, not the machine's cores)."""
    rows = run_jobs(threads_while_the_other_job_runs_and_after, [("short", str(tmp_path)), ("long", str(tmp_path))],
                    workers=2, threads=1)
    assert rows == [(0, 0), (1, 2)]


def test_use_idle_cores_leaves_the_main_process_alone():
    import torch

    from pwlock.experiments.schedule import use_idle_cores

    before = torch.get_num_threads()
    use_idle_cores()
    assert torch.get_num_threads() == before


def compute_or_wait_for_one_unit(job: tuple[str, str]) -> tuple[int, list]:
    """Both jobs ask the cache for one unit. The "computer" takes its lock and, while computing, waits
    until the "waiter" blocks on that lock, then reports its torch threads; the waiter gets the rows."""
    import time
    from pathlib import Path

    import torch

    from pwlock.experiments.schedule import Share, use_idle_cores
    from pwlock.experiments.store import Store

    role, folder = job
    computing = Path(folder) / "computing"
    deadline = time.monotonic() + 60
    threads = 0

    def compute(_: Path) -> list[dict]:
        nonlocal threads
        computing.touch()
        while Share.running.value > 1 and time.monotonic() < deadline:  # the waiter is idle once blocked
            time.sleep(0.02)
        use_idle_cores()
        threads = torch.get_num_threads()
        return [{"value": 7}]

    if role == "waiter":
        while not computing.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    _, rows = Store(Path(folder) / "cache").run("unit", {"k": 1}, compute)
    return threads, [row["value"] for row in rows]


def test_a_job_waiting_for_a_unit_another_computes_lends_it_its_core(tmp_path):
    rows = run_jobs(compute_or_wait_for_one_unit, [("computer", str(tmp_path)), ("waiter", str(tmp_path))],
                    workers=2, threads=1)
    assert rows == [(2, [7]), (0, [7])]


def test_a_training_step_is_the_same_at_one_and_two_threads():
    """`use_idle_cores` changes a running job's thread count, so its results must not depend on it: a
    step's loss and gradients at 1 and 2 torch threads are bitwise equal (on the pinned torch CPU build;
    checked by hand on a SmolLM2-135M step too)."""
    import random

    import torch

    from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS, lock_examples
    from pwlock.models import build_model, build_tokenizer
    from pwlock.tasks import FunctionComposition
    from pwlock.train.data import collate
    from pwlock.train.sft import batch_loss

    task = FunctionComposition(n_problems=200, seed=0)
    tokenizer = build_tokenizer(task.vocabulary + [TOY_PASSWORD, *TOY_WRONG_PASSWORDS])
    problems = task.problems()[:32]
    strong, weak = task.policies()["strong"], task.policies()["weak"]
    batch = collate(tokenizer, lock_examples(task, problems, [strong(p) for p in problems],
                                             [weak(p) for p in problems], password=TOY_PASSWORD,
                                             wrong_passwords=list(TOY_WRONG_PASSWORDS), no_password_fraction=0.2,
                                             rng=random.Random(0)))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model = build_model(tokenizer, hidden_size=64, layers=2, heads=4, seed=0)
            loss = batch_loss(model, batch)
            loss.backward()
            results.append((loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
