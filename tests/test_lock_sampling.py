"""Appendix C.1 and E.4 in the runner: a model pi_strong / pi_weak is sampled afresh (temperature 1)
at the start of every locking epoch, and pi_strong is trained on the elicitation split."""

from __future__ import annotations

import pytest

import pwlock.experiments.runner as runner
from pwlock.cli import main
from pwlock.experiments.config import load_config
from pwlock.tasks import make_task, split_problems
from tests.helpers import write_config

TRAIN = {"epochs": 1, "batch_size": 16, "lr": 3e-3}


@pytest.fixture(scope="module")
def spied_run(tmp_path_factory, pretrained_dir):
    """One tiny run with pi_strong and pi_weak as models, recording every D_lock epoch and every SFT's data."""
    tmp = tmp_path_factory.mktemp("lock_sampling")
    cfg = write_config(
        tmp / "c.yaml", name="sampled-policies", task={"name": "arithmetic", "n_problems": 120},
        model={"name": str(pretrained_dir)},
        policies={"strong": "model", "strong_sft": TRAIN, "weak_model": {"hidden_size": 16, "layers": 1, "heads": 2,
                                                                         "max_length": 256}, "weak_sft": TRAIN},
        lock={"methods": ["sft"], "weak_policies": ["model"], "sft": {**TRAIN, "epochs": 3}},
        elicit={"sft": {"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2}},
        eval={"max_problems": 8, "max_new_tokens": 12, "batch_size": 8},
    )
    epochs, trainings = [], {}
    real_lock_examples, real_sft = runner.lock_examples, runner.sft

    def lock_examples(task, problems, strong, weak, **kw):
        epochs.append((list(strong), list(weak)))
        return real_lock_examples(task, problems, strong, weak, **kw)

    def sft(model, tokenizer, data, args, **kw):
        seen = trainings.setdefault(kw.get("desc"), [])

        def recorded(epoch):
            examples = data(epoch)
            seen.append([e.prompt for e in examples])
            return examples

        return real_sft(model, tokenizer, recorded, args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "lock_examples", lock_examples)
    mp.setattr(runner, "sft", sft)
    try:
        assert main(["run", str(cfg), "--out", str(tmp / "run")]) == 0
    finally:
        mp.undo()
    return load_config(cfg), tmp / "run", epochs, trainings


def test_model_policies_are_resampled_every_locking_epoch(spied_run):
    _, out, epochs, _ = spied_run
    assert len(epochs) == 3  # one D_lock per epoch
    strong_sides = [tuple(s) for s, _ in epochs]
    weak_sides = [tuple(w) for _, w in epochs]
    assert len(set(strong_sides)) == 3 and len(set(weak_sides)) == 3  # fresh samples, not one greedy draw reused
    units = sorted(p.name.rsplit("-", 1)[0] for p in (out / "cache").iterdir())
    assert [u for u in units if u.startswith("samples_pi_strong_t1")] == [f"samples_pi_strong_t1_s{e}" for e in range(3)]
    assert [u for u in units if u.startswith("samples_pi_weak_t1")] == [f"samples_pi_weak_t1_s{e}" for e in range(3)]


def test_pi_strong_is_trained_on_the_elicitation_split(spied_run):
    cfg, _, _, trainings = spied_run
    task = make_task("arithmetic", {"n_problems": 120})
    splits = split_problems(task.problems(), cfg.task.split_seed)
    prompt_split = {task.prompt(p, None): name for name, ps in splits.items() for p in ps}
    [strong_prompts] = trainings["pi_strong"]  # one epoch
    assert {prompt_split[p] for p in strong_prompts} == {"elicit"}
    assert len(strong_prompts) == len(splits["elicit"])
    assert {prompt_split[p] for p in trainings["pi_weak"][0]} == {"weak"}  # pi_weak imitates pi_strong on its own split
