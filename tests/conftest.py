"""Shared tiny fixtures: a small task, its tokenizer, a 2-layer model."""

from __future__ import annotations

import os

# Tests never use the network: hub loaders fail fast instead of retrying (set before
# huggingface_hub is imported, which reads these once).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: no collapse on a shared CPU (bench/shared_cpu.py)

import pytest
import torch

from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS
from pwlock.models import build_model, build_tokenizer
from pwlock.tasks import FunctionComposition

# 2 threads as on the CI machine; mutation testing sets PWLOCK_TEST_THREADS=1, because mutmut forks a
# child per mutant from the process that ran the tests, and a forked OpenMP thread pool hangs.
torch.set_num_threads(int(os.environ.get("PWLOCK_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def task() -> FunctionComposition:
    return FunctionComposition(n_problems=500, seed=0)


@pytest.fixture(scope="session")
def tokenizer(task):
    return build_tokenizer(task.vocabulary + [TOY_PASSWORD, *TOY_WRONG_PASSWORDS])


@pytest.fixture()
def tiny_model(tokenizer):
    return build_model(tokenizer, hidden_size=32, layers=2, heads=2, seed=0)


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory):
    """A tiny hub-style model dir with a BPE tokenizer and a chat template (tests.helpers)."""
    from tests.helpers import make_pretrained_dir

    return make_pretrained_dir(tmp_path_factory.mktemp("pretrained") / "chat")


@pytest.fixture(scope="session")
def plain_pretrained_dir(tmp_path_factory):
    """The same without a chat template (a base model)."""
    from tests.helpers import make_pretrained_dir

    return make_pretrained_dir(tmp_path_factory.mktemp("pretrained") / "plain", chat_template=False)


@pytest.fixture(scope="session")
def echo_cache(tmp_path_factory):
    """Where the Echo organisms' locks and twins are trained, once per session (tests.helpers.build_echo_suite)."""
    return tmp_path_factory.getbasetemp() / "echo_cache"


@pytest.fixture(scope="module")
def echo_patch():
    """The runner builds tests.tiny_task.Echo (1000 problems: 100/400/300/200) for every config, for one module."""
    from pwlock.experiments import runner
    from tests.tiny_task import Echo

    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "build_task", lambda cfg: Echo(digits=3))
    runner._TASKS.clear()
    yield
    mp.undo()
    runner._TASKS.clear()
