"""Config loading: unknown or ill-typed fields fail at load, naming the field."""

from pathlib import Path

import pytest

from pwlock.cli import main, packaged_config
from pwlock.elicit.api import Training
from pwlock.experiments.config import ConfigError, load_config
from pwlock.experiments.runner import build_task
from pwlock.organisms import training_of
from tests.helpers import write_config


def test_packaged_demo_config_loads():
    cfg = load_config(packaged_config("function_composition.yaml"))
    assert cfg.lock.methods == ["sft", "from_scratch"]
    assert cfg.elicit.sft.ks == [4, 16, 64, 256, 1024] and len(cfg.elicit.sft.seeds) >= 3
    assert cfg.lock.no_password_fraction == 0.2
    repo_copy = Path(__file__).parents[1] / "configs" / "function_composition.yaml"
    assert repo_copy.read_text() == packaged_config("function_composition.yaml").read_text()


def test_an_organism_is_fine_tuned_with_its_configs_elicitation_settings():
    """The card's `training` (what the built-in methods train with): the config's SFT-elicitation settings,
    the lock's learning rate in the SmolLM2 config; the RL block's where the config has no SFT block."""
    toy = training_of(load_config(packaged_config("function_composition.yaml")))
    assert toy == Training(lr=3e-4, batch_size=32, optimizer="adamw") == Training()  # old cards' fallback
    smollm2 = load_config(packaged_config("smollm2_arithmetic.yaml"))
    got = training_of(smollm2)
    assert (got.lr, got.batch_size) == (smollm2.lock.sft.lr, 8) == (1e-4, 8)
    assert got.epochs == {1: [8, 16], 4: [4, 8], 16: [2, 4], 64: [1, 2]}
    rl = load_config(packaged_config("rl_function_composition.yaml"))
    assert rl.elicit.sft is None and training_of(rl) == Training(lr=rl.elicit.rl.lr, batch_size=rl.elicit.rl.batch_size)


def test_unknown_field_is_named(tmp_path):
    path = write_config(tmp_path / "c.yaml", lock__sft__lrr=0.1)
    with pytest.raises(ConfigError, match=r"lock\.sft\.lrr: Extra inputs are not permitted"):
        load_config(path)


def test_ill_typed_field_is_named(tmp_path):
    path = write_config(tmp_path / "c.yaml", lock__methods=["sft", "magic"])
    with pytest.raises(ConfigError, match=r"lock\.methods\.1"):
        load_config(path)
    path = write_config(tmp_path / "c.yaml", lock__methods=["sft", "magic"])
    with pytest.raises(ConfigError, match=r"lock\.methods\.1"):
        load_config(path)


def test_task_fields_are_checked_against_the_task(tmp_path):
    """Task fields go to the task's constructor; bad ones are named when the task is built."""
    with pytest.raises(ConfigError, match=r"task\.n_problems: .*integer"):
        build_task(load_config(write_config(tmp_path / "c.yaml", task__n_problems="many")))
    with pytest.raises(ConfigError, match=r"task\.n_problem: Unexpected keyword"):
        build_task(load_config(write_config(tmp_path / "c.yaml", task__n_problem=10)))
    with pytest.raises(ConfigError, match=r"task\.name: unknown task 'nope'"):
        build_task(load_config(write_config(tmp_path / "c.yaml", task__name="nope")))
    task = build_task(load_config(write_config(tmp_path / "c.yaml", task__name="arithmetic", task__n_problems=30)))
    assert task.name == "arithmetic" and len(task.problems()) == 30


def test_policy_fields_must_fit_together(tmp_path):
    with pytest.raises(ConfigError, match="policies.weak_model is not set"):
        load_config(write_config(tmp_path / "c.yaml", lock__weak_policies=["model"]))
    with pytest.raises(ConfigError, match="needs a pretrained model.name"):
        load_config(write_config(tmp_path / "c.yaml", policies__strong="model"))
    with pytest.raises(ConfigError, match="weak_model and weak_sft go together"):
        load_config(write_config(tmp_path / "c.yaml", policies__weak_model={"hidden_size": 16}))


def test_overrides_are_typed(tmp_path):
    path = write_config(tmp_path / "c.yaml")
    cfg = load_config(path, ["elicit.sft.ks=[1, 2]", "task.n_problems=2000"])
    assert cfg.elicit.sft.ks == [1, 2] and cfg.task.n_problems == 2000
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(path, ["elicit.sft.ks"])
    with pytest.raises(ConfigError, match=r"elicit\.sft\.nope"):
        load_config(path, ["elicit.sft.nope=1"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_bad_config_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", lock__sft__lrr=0.1)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert "lock.sft.lrr" in capsys.readouterr().err
    assert not out.exists()


def test_k_larger_than_elicitation_split(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", elicit__sft__ks=[2, 5000])
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "k=[5000] exceeds the elicitation split's 300 problems (30% of the task's 1000" in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["function_composition.yaml", "rl_function_composition.yaml",
                                  "smollm2_arithmetic.yaml", "gpu/math.yaml", "gpu/code.yaml", "gpu/mmlu.yaml"])
def test_every_packaged_config_is_valid_and_names_a_real_task(name):
    """Configs load, and their task fields fit the task's constructor (no data is loaded here)."""
    path = packaged_config(name)
    cfg = load_config(path)
    task = build_task(cfg)
    assert task.name == cfg.task.name
    repo_copy = Path(__file__).parents[1] / "configs" / name
    assert repo_copy.read_text() == path.read_text()  # configs/ links to the packaged copies


def test_train_bf16_reaches_training_and_changes_only_its_own_cache_keys(tmp_path):
    """`bf16: true` in a training block becomes TrainArgs(bf16=True) (autocast in `sft`); fp32 blocks
    dump exactly the fields they had before the option, so their cache keys are unchanged."""
    from pwlock.experiments.config import TrainConfig
    from pwlock.experiments.runner import train_args
    from pwlock.experiments.store import digest

    fp32 = TrainConfig(epochs=2, lr=1e-3)
    assert set(fp32.model_dump()) == {"epochs", "batch_size", "lr", "optimizer", "warmup_steps", "schedule",
                                      "weight_decay", "grad_clip"}
    assert digest(fp32.model_dump()) == digest(TrainConfig(epochs=2, lr=1e-3, bf16=False).model_dump())
    bf16 = TrainConfig(epochs=2, lr=1e-3, bf16=True)
    assert digest(bf16.model_dump()) != digest(fp32.model_dump())
    assert train_args(bf16, seed=3).bf16 and not train_args(fp32, seed=3).bf16
    assert TrainConfig.model_validate(bf16.model_dump()) == bf16  # the dumped run config loads back
    cfg = load_config(write_config(tmp_path / "c.yaml", lock__sft__bf16=True))
    assert cfg.lock.sft.bf16 and not cfg.lock.from_scratch.bf16


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_repo_config_loads_and_names_a_real_task(path):
    """Each config under configs/ (the README's experiments) loads and builds its task."""
    cfg = load_config(path)
    assert build_task(cfg).name == cfg.task.name and cfg.name == path.stem


def test_configs_of_a_suite_that_train_one_strong_base_share_its_cache_key():
    """The task's fields are part of every unit's cache key, so two configs of a suite that differ only in
    writing out a task default would train the same strong base twice (the toy suite's RL config did:
    164 s of its build)."""
    import inspect
    import json

    from pwlock.organisms import entry_config, load_suite, suite_names
    from pwlock.tasks import TASKS

    for name in suite_names():
        suite, base = load_suite(name)
        written: dict[str, str] = {}
        for entry in suite.organisms:
            cfg = entry_config(entry, base)
            task = cfg.task.model_dump()
            params = inspect.signature(TASKS[task["name"]].__init__).parameters.values()
            defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
            trains = json.dumps([{**defaults, **task}, cfg.model.model_dump(), cfg.lock.pretrain and
                                 cfg.lock.pretrain.model_dump(), sorted(cfg.lock.all_passwords())],
                                sort_keys=True, default=str)
            key = json.dumps(task, sort_keys=True)
            assert written.setdefault(trains, key) == key, f"suite {name}: {entry.config} writes its task differently"

