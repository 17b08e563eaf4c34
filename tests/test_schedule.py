"""The scheduler: job order kept, a worker's error raised in the caller, one torch thread per worker."""

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
