"""`accelerate launch` with 2 CPU processes (gloo DDP): the same command trains with each batch split
across processes, only the main process writes units and results, and the run finishes with the
same rows as its units record."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pwlock.io import read_jsonl
from tests.helpers import write_config


@pytest.mark.skipif(shutil.which("accelerate") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "accelerate")), reason="accelerate CLI not installed")
def test_two_process_launch_runs_the_pipeline_once(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", lock__methods=["sft"],
                       elicit={"sft": {"ks": [4], "seeds": [0], "epochs": {4: [1]}, "batch_size": 4}},
                       eval={"max_problems": 16, "max_new_tokens": 10}, threads=1)
    out = tmp_path / "run"
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [launcher, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "pwlock", "run", str(cfg), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_jsonl(out / "results.jsonl")
    units = sorted(p for p in (out / "cache").iterdir())
    assert all((u / "unit.json").is_file() for u in units)  # no half-written or per-process leftovers
    assert {u.name.rsplit("-", 1)[0] for u in units} == {
        "strong_base", "lock_sft", "eval_lock_sft", "elicit_sft_sft_k4_s0"}
    recorded = [r for u in units for r in read_jsonl(u / "rows.jsonl")]
    assert sorted(r["unit"] for r in rows if r["unit"]) == sorted(r["unit"] for r in recorded)
    assert {r["policy"] for r in rows} == {"strong", "weak", "locked", "elicited"}
    assert (out / "summary.json").is_file()
