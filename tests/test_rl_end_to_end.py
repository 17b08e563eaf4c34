"""A tiny RL elicitation run through the CLI: four methods, a graded pi_weak and fixedrdm."""

import json

import pytest

from pwlock.cli import main
from pwlock.experiments import runner
from pwlock.report import load_results
from pwlock.tasks import FunctionComposition
from tests.helpers import write_config

pytestmark = pytest.mark.slow

RL = {"methods": ["expert_iteration", "filtering", "dpo", "iterated_dpo"], "seeds": [0, 1], "rounds": 3, "n": 4,
      "eval_every": 2, "batch_size": 4, "dpo_epochs": 2, "dpo_problems": 16, "dpo_lrs": [1e-3, 5e-4],
      "dpo_batch_size": 8}


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    config = write_config(root / "rl.yaml", lock__methods=["sft"], lock__weak_policies=["identity16", "fixedrdm"],
                          elicit__sft=None, elicit__rl=RL, eval__max_problems=20)
    out = root / "run"
    real = runner.expert_iteration

    def spy(*args, candidates, **kwargs):  # every candidate batch of every expert-iteration/filtering run
        batches = []
        CANDIDATES.append(batches)

        def recorded(problems, r):
            batches.append((list(problems), candidates(problems, r)))
            return batches[-1][1]

        return real(*args, candidates=recorded, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "expert_iteration", spy)
    try:
        assert main(["run", str(config), "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out


CANDIDATES: list[list[tuple[list, list[str]]]] = []


def test_filtering_candidates_come_from_pi_weak(rl_run):
    """Filtering fine-tunes on pi_weak's samples (here identity16's, deterministic); expert
    iteration on the model's own samples (temperature 1), which are not pi_weak's."""
    task = FunctionComposition(n_problems=1000)
    identity16 = task.policies()["identity16"]
    runs = [[completions == [identity16(p) for p in problems] for problems, completions in batches]
            for batches in CANDIDATES]
    assert len(runs) == 8 and all(len(r) == 3 for r in runs)  # (EI, filtering) x 2 locks x 2 seeds, 3 rounds
    assert sum(all(r) for r in runs) == 2  # filtering from the identity16 lock, both seeds
    assert sum(any(r) for r in runs) == 2  # no other run ever draws exactly pi_weak's completions


def test_rl_rows(rl_run):
    df = load_results(rl_run)
    assert set(df["policy"]) == {"strong", "identity16", "fixedrdm", "locked", "elicited"}
    assert df.loc[df["policy"] == "fixedrdm", "correctness"].item() == 0.0  # random tokens are never right
    el = df[df["policy"] == "elicited"]
    assert set(el["weak_policy"]) == {"identity16", "fixedrdm"} and not el["with_password"].any()
    for method, lrs, xs in (("expert_iteration", {3e-4}, [0, 80, 120]), ("filtering", {3e-4}, [0, 80, 120]),
                            ("dpo", {1e-3, 5e-4}, [0, 32, 64]), ("iterated_dpo", {1e-3, 5e-4}, [0, 32, 64])):
        rows = el[el["elicitation"] == method]
        assert set(rows["lr"]) == lrs
        # one trace per (pi_weak, lr, seed), x = completions generated so far
        assert len(rows) == 2 * len(lrs) * 2 * len(xs)
        for _, trace in rows.groupby(["weak_policy", "lr", "seed"]):
            assert list(trace["samples"]) == xs
    # every trace starts from the locked model without password
    start = el[el["samples"] == 0]
    locked = df[(df["policy"] == "locked") & ~df["with_password"]].set_index("weak_policy")["correctness"]
    assert (start["correctness"].to_numpy() == locked[start["weak_policy"]].to_numpy()).all()


def test_rl_summary_and_figure(rl_run):
    s = json.loads((rl_run / "summary.json").read_text())
    assert set(s["rl"]) == {"sft-identity16", "sft-fixedrdm"}
    for methods in s["rl"].values():
        assert set(methods) == {"expert_iteration", "filtering", "dpo", "iterated_dpo"}
        assert methods["dpo"]["lr"] in (1e-3, 5e-4) and methods["dpo"]["samples"] == 64
        assert methods["expert_iteration"]["samples"] == 120 and methods["expert_iteration"]["seeds"] == 2
    assert (rl_run / "figures" / "rl_elicitation.png").stat().st_size > 10_000
    report = (rl_run / "report.md").read_text()
    assert "RL elicitation" in report and "rl_elicitation.png" in report
