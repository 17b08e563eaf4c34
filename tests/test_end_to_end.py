"""A tiny end-to-end run through the CLI, resume (also after a hard kill) and bad run dirs."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from pwlock.cli import main
from tests.helpers import write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    config = write_config(root / "tiny.yaml", workers=2)  # the locks in two worker processes
    out = root / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    return config, out


def test_results_table(tiny_run):
    _, out = tiny_run
    df = pd.read_json(out / "results.jsonl", lines=True)
    assert {"setting", "lock_method", "elicitation", "demo_source", "k", "epochs", "seed", "with_password",
            "correctness", "n", "policy"} <= set(df.columns)
    assert set(df["policy"]) == {"strong", "weak", "locked", "elicited"}
    locked = df[df["policy"] == "locked"]
    assert len(locked) == 4 and set(locked["with_password"]) == {True, False}
    el = df[df["elicitation"] == "sft"]
    # 2 lock methods x 2 ks x 2 seeds x 2 candidate epochs, all without the password.
    assert len(el) == 16 and not el["with_password"].any()
    assert set(el["k"]) == {2, 4} and set(el["seed"]) == {0, 1} and set(el["epochs"]) == {1, 2}
    assert ((df["correctness"] >= 0) & (df["correctness"] <= 1)).all()
    assert (df.loc[df["policy"] == "strong", "correctness"] == 1.0).all()


def test_summary_and_report(tiny_run):
    _, out = tiny_run
    s = json.loads((out / "summary.json").read_text())
    assert s["strong_correctness"] == 1.0 and 0 < s["weak_correctness"] < 0.6
    for m in ("sft", "from_scratch"):
        assert set(s["locked"][m]) == {"with_password", "without_password"}
        assert set(s["elicitation"][m]) == {"2", "4"}
        for v in s["elicitation"][m].values():
            assert v["seeds"] == 2 and v["epochs"] in (1, 2) and v["sem"] >= 0
            # the selected epoch is the one with the best mean over seeds
            assert v["mean"] == max(v["mean_by_epochs"].values())
    assert s["wall_seconds"] > 0
    assert (out / "figures" / "sft_elicitation.png").stat().st_size > 10_000
    assert "SFT elicitation" in (out / "report.md").read_text()
    # generations are kept beside each unit's rows, one line per validation problem
    [unit] = (out / "cache").glob("elicit_sft_sft_k2_s0-*")
    assert len((unit / "completions_2_epochs.jsonl").read_text().splitlines()) == 40
    assert len((unit / "demos.jsonl").read_text().splitlines()) == 2


def test_rerun_resumes_without_recomputing(tiny_run, capsys):
    config, out = tiny_run
    units = {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()}
    before = (out / "results.jsonl").read_text()
    assert main(["run", str(config), "--out", str(out)]) == 0  # no unit recomputed (the mtimes), same rows
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()} == units
    assert (out / "results.jsonl").read_text() == before


def test_report_redraws(tiny_run, capsys):
    _, out = tiny_run
    (out / "figures" / "sft_elicitation.png").unlink()
    wall = json.loads((out / "summary.json").read_text())["wall_seconds"]
    assert main(["report", str(out)]) == 0
    assert (out / "figures" / "sft_elicitation.png").is_file()
    assert json.loads((out / "summary.json").read_text())["wall_seconds"] == wall
    assert "figure:" in capsys.readouterr().out


def test_report_on_missing_or_foreign_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "run dir not found" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert main(["report", str(tmp_path / "foreign")]) == 2
    assert "not a pwlock run dir" in capsys.readouterr().err


def test_run_refuses_foreign_or_other_config_dir(tiny_run, tmp_path, capsys):
    config, out = tiny_run
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["run", str(config), "--out", str(foreign)]) == 2
    assert "not a pwlock run dir" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    other = write_config(tmp_path / "other.yaml", eval__max_problems=30)
    assert main(["run", str(other), "--out", str(out)]) == 2
    assert "different config" in capsys.readouterr().err


def test_resume_after_hard_kill(tmp_path):
    """SIGKILL the run once its first unit is finished; the re-run keeps that unit and completes."""
    config = write_config(tmp_path / "tiny.yaml", lock__methods=["sft"], elicit__sft__ks=[2], elicit__sft__seeds=[0])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pwlock.cli", "run", str(config), "--out", str(out)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / "cache"
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("strong_base-*/unit.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [base] = cache.glob("strong_base-*")
    mtime = (base / "unit.json").stat().st_mtime_ns
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (base / "unit.json").stat().st_mtime_ns == mtime  # the finished unit was not redone
    assert not list(cache.glob(".tmp-*"))  # the killed process's partial unit was cleaned up
    df = pd.read_json(out / "results.jsonl", lines=True)
    assert len(df[df["policy"] == "elicited"]) == 2


def test_shared_cache_reuses_units_under_a_new_name(tiny_run, tmp_path):
    """Another run dir with a renamed config reuses every unit through --cache-dir, and
    its rows carry the new setting name."""
    config, out = tiny_run
    renamed = write_config(tmp_path / "renamed.yaml", name="renamed")
    units = {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()}
    assert main(["run", str(renamed), "--out", str(tmp_path / "run2"), "--cache-dir", str(out / "cache")]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()} == units
    df = pd.read_json(tmp_path / "run2" / "results.jsonl", lines=True)
    assert set(df["setting"]) == {"renamed"}


def test_locks_run_in_worker_processes_with_the_rows_of_a_serial_run(tiny_run, tmp_path, capfd):
    """threads: 2 and two locks: two single-thread worker processes, one lock each. The same config run
    serially in one single-thread process gives the same rows, in the same order (only the thread
    count per process, not the scheduling, could change fp32 rounding)."""
    config, out = tiny_run
    serial = tmp_path / "serial"
    assert main(["run", str(config), "--out", str(serial), "--set", "workers=1", "--set", "threads=1"]) == 0
    assert "worker processes" not in capfd.readouterr().err
    cols = ["policy", "lock_method", "elicitation", "k", "seed", "epochs", "with_password", "correctness", "unit"]
    parallel_rows = pd.read_json(out / "results.jsonl", lines=True)[cols]
    serial_rows = pd.read_json(serial / "results.jsonl", lines=True)[cols]
    pd.testing.assert_frame_equal(parallel_rows, serial_rows)


def test_worker_processes_only_on_a_cpu_run_with_several_locks(tmp_path):
    from pwlock.experiments.config import load_config
    from pwlock.experiments.runner import parallel_workers

    cfg = load_config(write_config(tmp_path / "c.yaml", workers=None))
    assert parallel_workers(cfg, 2, n_locks=2) == 2  # one per thread by default
    assert parallel_workers(cfg, 2, n_locks=1) == 1
    assert parallel_workers(cfg, 1, n_locks=2) == 1
    assert parallel_workers(cfg.model_copy(update={"workers": 1}), 2, n_locks=6) == 1
    gpu = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": "cuda"})})
    assert parallel_workers(gpu, 2, n_locks=6) == 1
