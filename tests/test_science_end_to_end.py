"""The whole pipeline through the CLI, on a task a tiny model learns in seconds (tests.tiny_task.Echo):
directions and magnitudes, not row counts. The lock hides pi_strong behind the password, SFT on
strong demonstrations and expert iteration recover it, filtering on pi_weak's (deterministic)
samples much less, and a warm start moves the model before RL begins."""

import pytest

from pwlock.cli import main
from pwlock.experiments import runner
from pwlock.report import load_results
from tests.helpers import write_config
from tests.tiny_task import Echo

pytestmark = pytest.mark.slow

RL = {"methods": ["expert_iteration", "filtering"], "seeds": [0], "rounds": 3, "n": 16, "eval_every": 3,
      "batch_size": 8, "epochs_per_round": 2, "lr": 1e-3}


@pytest.fixture(scope="module")
def echo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("echo")
    config = write_config(
        root / "echo.yaml",
        model={"hidden_size": 64, "layers": 2, "heads": 2},
        lock__methods=["from_scratch"], lock__pretrain=None, lock__sft=None,
        lock__from_scratch={"epochs": 3, "batch_size": 32, "lr": 3e-3},
        elicit__sft={"ks": [16], "seeds": [0], "epochs": {16: [4]}, "batch_size": 8, "lr": 1e-3},
        elicit__rl=[RL, {**RL, "methods": ["expert_iteration"], "rounds": 1, "eval_every": 1,
                         "warm_start": {"source": "strong", "k": 16, "epochs": 4, "lr": 1e-3, "batch_size": 8}}],
        eval__max_problems=100, eval__max_new_tokens=4, threads=1,
    )
    out = root / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "build_task", lambda cfg: Echo(digits=3))  # 1000 problems: 100/400/300/200
    try:
        assert main(["run", str(config), "--out", str(out)]) == 0
    finally:
        mp.undo()
    return load_results(out)


def one(df, **where):
    rows = df
    for k, v in where.items():
        rows = rows[rows[k].isna()] if v is None else rows[rows[k] == v]
    assert len(rows) == 1, where
    return rows["correctness"].item()


def test_the_lock_and_sft_elicitation(echo_run):
    df = echo_run
    weak, strong = one(df, policy="weak"), one(df, policy="strong")
    with_pw = one(df, policy="locked", with_password=True, elicitation=None)
    without = one(df, policy="locked", with_password=False, elicitation=None)
    assert strong == 1.0 and 0.1 < weak < 0.4  # 0.21 on these 100 problems
    assert with_pw >= 0.85 and with_pw - without >= 0.5, (with_pw, without)  # 0.99 vs 0.21
    assert abs(without - weak) <= 0.08, (without, weak)
    elicited = one(df, policy="elicited", elicitation="sft", k=16, epochs=4)
    assert elicited >= without + 0.4, (without, elicited)  # 16 strong demonstrations unlock it


def trace(df, method, warm_start=None):
    rows = df[(df["elicitation"] == method)]
    rows = rows[rows["warm_start"].isna()] if warm_start is None else rows[rows["warm_start"] == warm_start]
    return dict(zip(rows["samples"], rows["correctness"]))


def test_rl_directions(echo_run):
    df = echo_run
    without = one(df, policy="locked", with_password=False, elicitation=None)
    ei, filtering = trace(df, "expert_iteration"), trace(df, "filtering")
    assert ei[0] == filtering[0] == without  # both start from the locked model
    assert ei[480] >= without + 0.3, ei  # the model's own correct samples, reinforced
    # pi_weak's correct samples (problems whose digits are all low) teach far less: 0.23 -> 0.35
    assert ei[480] - filtering[480] >= 0.3, (ei, filtering)
    warm = trace(df, "expert_iteration", "sft strong k=16")
    assert warm[0] >= without + 0.3, (without, warm)  # the warm start changed the model before RL
