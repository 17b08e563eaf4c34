"""Bad input, damaged files and caches, concurrent runs: every case ends in one clear line and exit 2,
or is repaired (the run or report finishes with the right results). Never a traceback, never a
silently wrong result.

The cases are data (`CASES`): `classify(case, ...)` runs one through the CLI in this process and
names its outcome (clear / repaired / unclear / silent / traceback), so the same list measures any
version of pwlock (`python tests/test_bad_input.py` prints the tally).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import TINY

# One lock, one k, one seed: the finished run the damage cases start from (seconds to make).
BASE = copy.deepcopy(TINY)
BASE["lock"]["methods"] = ["from_scratch"]
BASE["elicit"] = {"sft": {"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2}}
BASE["eval"] = {"max_problems": 8, "max_new_tokens": 10}
BASE["task"] = {"n_problems": 300}


def config(tmp: Path, changes: dict | None = None, base: dict | None = None, name: str = "c.yaml") -> Path:
    """A config file: `base` (default BASE) with dotted `changes` (`a.b: value`; value None deletes)."""
    cfg = copy.deepcopy(base or BASE)
    for dotted, value in (changes or {}).items():
        node = cfg
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass
class Case:
    id: str
    setup: Callable[[Path, Path | None], list[str]]
    """(a fresh tmp dir, a copy of a finished BASE run or None) -> the pwlock arguments."""
    expect: str
    """A piece of the one-line error; or `ok` for a case that must be repaired."""
    check: Callable[[Path, Path | None, str], bool] | None = None
    """ok cases: (tmp, run copy, stderr) -> whether the repaired result is right."""
    needs_run: bool = False


def run_cfg(changes: dict, base: dict | None = None, *extra: str) -> Callable[[Path, Path | None], list[str]]:
    return lambda tmp, run: ["run", str(config(tmp, changes, base)), "--out", str(tmp / "out"), *extra]


def data_file(name: str, text: str | bytes, task: dict | None = None) -> Callable[[Path, Path | None], list[str]]:
    """A run of gsm8k (pretrained-model task) whose local source is a file with this content."""
    def setup(tmp: Path, run: Path | None) -> list[str]:
        path = tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        cfg = config(tmp, {"task": {"name": "gsm8k", "source": str(path), **(task or {})}})
        return ["run", str(cfg), "--out", str(tmp / "out")]
    return setup


GOOD_ROW = json.dumps({"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"})


def on_run(edit: Callable[[Path], None], command: str = "report", *extra: str
           ) -> Callable[[Path, Path | None], list[str]]:
    """Damage a copy of the finished run, then `pwlock report` it or re-run its config into it."""
    def setup(tmp: Path, run: Path | None) -> list[str]:
        assert run is not None
        edit(run)
        if command == "report":
            return ["report", str(run)]
        return ["run", str(run.parent / "base.yaml"), "--out", str(run), *extra]
    return setup


def unit_file(run: Path, unit: str, name: str) -> Path:
    [path] = (run / "cache").glob(f"{unit}-*/{name}")
    return path


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip(path: Path) -> None:
    """Overwrite bytes in place, same size (weights edited after the unit finished)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 4096, len(data) - 8, 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def same_results(tmp: Path, run: Path | None, err: str) -> bool:
    """The re-run or report reproduced the undamaged run's results."""
    assert run is not None
    return (run / "results.jsonl").read_text() == (run.parent / "results.orig").read_text()


def same_summary(tmp: Path, run: Path | None, err: str) -> bool:
    assert run is not None
    ok = json.loads((run / "summary.json").read_text())
    orig = json.loads((run.parent / "summary.orig").read_text())
    return {k: v for k, v in ok.items() if k != "wall_seconds"} == {
        k: v for k, v in orig.items() if k != "wall_seconds"}


def rewrite(path_of: Callable[[Path], Path], text: str | bytes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        p = path_of(run)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return edit


def results(run: Path) -> Path:
    return run / "results.jsonl"


def doubled(run: Path) -> None:
    text = results(run).read_text()
    results(run).write_text(text + text)


def lacks_correctness(run: Path) -> None:
    rows = [json.loads(x) for x in results(run).read_text().splitlines()]
    del rows[1]["correctness"]
    results(run).write_text("".join(json.dumps(r) + "\n" for r in rows))


def clashing(run: Path) -> None:
    lines = results(run).read_text().splitlines()
    row = json.loads(lines[0])
    row["correctness"] = 1 - row["correctness"] if row["correctness"] != 0.5 else 0.25
    results(run).write_text("\n".join(lines + [json.dumps(row)]) + "\n")


def other_unfinished_marker(tmp: Path, run: Path | None) -> list[str]:
    """A run dir left by a config that failed at run time (marker, no results) takes the corrected one
    (here its units come from the finished run's cache)."""
    assert run is not None
    out = tmp / "out"
    out.mkdir()
    bad = yaml.safe_load(config(tmp, {"lock.from_scratch.lr": 0.9}).read_text())
    (out / "pwlock_run.json").write_text(json.dumps({"pwlock": "0", "config": bad}))
    return ["run", str(config(tmp, name="fixed.yaml")), "--out", str(out), "--cache-dir", str(run / "cache")]


def finished(tmp: Path, run: Path | None, err: str) -> bool:
    return (tmp / "out" / "results.jsonl").is_file()


def non_utf8(tmp: Path, run: Path | None) -> list[str]:
    path = config(tmp)
    path.write_bytes(path.read_bytes().replace(b"name: tiny", b"name: t\xe9\xff"))
    return ["run", str(path), "--out", str(tmp / "out")]


RL = {"methods": ["expert_iteration"], "seeds": [0], "n": 4, "rounds": 1, "eval_every": 1, "dpo_problems": 8,
      "dpo_epochs": 1, "dpo_lrs": [1e-4]}
"""An RL block small enough to run on BASE's 90 elicitation problems."""
LONG = " ".join(f"w{i}" for i in range(80))
TASK_GSM8K = {"task": {"name": "gsm8k"}}

CASES = [
    # -- duplicates would count as seeds --
    Case("dup_sft_seeds", run_cfg({"elicit.sft.seeds": [0, 0]}), "elicit.sft.seeds"),
    Case("dup_ks", run_cfg({"elicit.sft.ks": [2, 2]}), "elicit.sft.ks"),
    Case("dup_epoch_candidates", run_cfg({"elicit.sft.epochs": {2: [1, 1]}}), "elicit.sft.epochs"),
    Case("dup_lock_seeds", run_cfg({"lock.seeds": [1, 1]}), "seeds"),
    Case("dup_dpo_lrs", run_cfg({"elicit.rl": {**RL, "methods": ["dpo"], "dpo_lrs": [1e-4, 1e-4]}}), "dpo_lrs"),
    Case("dup_rl_seeds", run_cfg({"elicit.rl": {**RL, "seeds": [3, 3]}}), "elicit.rl.seeds"),
    Case("dup_fewshot_ks", run_cfg({"elicit.prompting": {"fewshot_ks": [1, 1]}}), "fewshot_ks"),
    Case("dup_wrong_passwords", run_cfg({"lock.wrong_passwords": ["dog", "dog"]}), "wrong_passwords"),
    # -- degenerate values --
    Case("lr_inf", run_cfg({"lock.from_scratch.lr": float("inf")}), "lock.from_scratch.lr"),
    Case("lr_nan", run_cfg({"elicit.sft.lr": float("nan")}), "elicit.sft.lr"),
    Case("lr_huge", run_cfg({"lock.from_scratch.lr": 50.0}), "lock.from_scratch.lr"),
    Case("fraction_nan", run_cfg({"lock.no_password_fraction": float("nan")}), "no_password_fraction"),
    Case("temperature_inf", run_cfg({"elicit.rl": {**RL, "temperature": float("inf")}}), "temperature"),
    Case("password_empty", run_cfg({"lock.password": ""}), "lock.password"),
    Case("password_blank", run_cfg({"lock.password": "   "}), "lock.password"),
    Case("password_same_prompt", run_cfg({"lock.password": "_"}), "lock.password"),
    Case("epochs_zero", run_cfg({"elicit.sft.epochs": {2: [0]}}), "elicit.sft.epochs"),
    Case("epochs_empty", run_cfg({"elicit.sft.epochs": {2: []}}), "elicit.sft.epochs"),
    Case("epochs_negative", run_cfg({"elicit.sft.epochs": {2: [-1, 1]}}), "elicit.sft.epochs"),
    Case("k_zero", run_cfg({"elicit.sft.ks": [0]}), "ks"),
    Case("wrong_passwords_empty", run_cfg({"lock.wrong_passwords": []}), "wrong_passwords"),
    Case("wrong_password_blank", run_cfg({"lock.wrong_passwords": ["dog", ""]}), "wrong_passwords"),
    Case("seed_negative", run_cfg({"model.seed": -1}), "model.seed"),
    Case("seed_huge", run_cfg({"elicit.sft.seeds": [2**40]}), "elicit.sft.seeds"),
    Case("heads_not_dividing", run_cfg({"model.hidden_size": 30, "model.heads": 4}), "heads"),
    Case("password_longer_than_context", run_cfg({"lock.password": LONG}), "max_length"),
    Case("scratch_model_no_vocabulary", run_cfg({**TASK_GSM8K, "lock.weak_policies": ["fixedrdm"]}), "vocabulary"),
    Case("config_not_utf8", non_utf8, "UTF-8"),
    Case("override_bad_yaml", lambda tmp, run: ["run", str(config(tmp)), "--out", str(tmp / "out"),
                                                "--set", "lock.password=[oops"], "lock.password"),
    # -- data files of a task's local source --
    Case("source_missing", data_file("unused.txt", "", {"source": "./no/such/file.jsonl"}), "no/such/file.jsonl"),
    Case("source_bad_jsonl_line", data_file("d.jsonl", GOOD_ROW + "\n{oops\n"), "d.jsonl:2"),
    Case("source_row_not_object", data_file("d.jsonl", GOOD_ROW + "\n[1, 2]\n"), "d.jsonl:2"),
    Case("source_missing_field", data_file("d.jsonl", json.dumps({"question": "q"}) + "\n"), "answer"),
    Case("source_not_utf8", data_file("d.jsonl", b'{"question": "\xff\xfe"}\n'), "d.jsonl"),
    Case("source_bad_json", data_file("d.json", "[{\"question\": 1,\n"), "d.json:"),
    Case("source_ragged_csv", data_file("d.csv", "question,answer\nq,a\nq2,a2,extra\n"), "d.csv:3"),
    # -- stored results of a run dir (report) --
    Case("results_truncated", on_run(lambda r: truncate(results(r), 0.7)), "results.jsonl:"),
    Case("results_binary", on_run(rewrite(results, b"\x00\xff\x00garbage")), "results.jsonl"),
    Case("results_empty", on_run(rewrite(results, "")), "results.jsonl"),
    Case("results_row_lacks_correctness", on_run(lacks_correctness), "results.jsonl: row 2"),
    Case("results_duplicate_rows", on_run(doubled), "ok", same_summary, needs_run=True),
    Case("results_conflicting_rows", on_run(clashing), "results.jsonl"),
    Case("summary_corrupt", on_run(rewrite(lambda r: r / "summary.json", "{not json")), "ok", same_summary),
    Case("marker_corrupt_rerun", on_run(rewrite(lambda r: r / "pwlock_run.json", "{oops"), "run"), "pwlock_run.json"),
    Case("out_is_a_file", lambda tmp, run: (tmp / "f").write_text("x") and ["run", str(config(tmp)), "--out",
                                                                         str(tmp / "f")], "not a directory"),
    Case("marker_of_failed_config", other_unfinished_marker, "ok", finished, needs_run=True),
    # -- damaged cache units: recomputed on re-run, or refused with --no-recompute --
    Case("unit_rows_emptied", on_run(rewrite(lambda r: unit_file(r, "eval_lock_from_scratch", "rows.jsonl"), ""),
                                     "run"), "ok", same_results),
    Case("unit_rows_truncated", on_run(lambda r: truncate(unit_file(r, "elicit_sft_from_scratch_k2_s0",
                                                                    "rows.jsonl"), 0.6), "run"), "ok", same_results),
    Case("unit_weights_truncated", on_run(lambda r: truncate(unit_file(r, "lock_from_scratch", "model/model.safetensors")),
                                          "run"), "ok", same_results),
    Case("unit_weights_overwritten", on_run(lambda r: flip(unit_file(r, "lock_from_scratch", "model/model.safetensors")),
                                            "run"), "ok", same_results),
    Case("unit_no_recompute", on_run(lambda r: truncate(unit_file(r, "lock_from_scratch", "model/model.safetensors")),
                                     "run", "--no-recompute"), "lock_from_scratch-"),
]
for c in CASES:
    c.needs_run = c.needs_run or c.setup.__qualname__.startswith("on_run")


def classify(case: Case, tmp: Path, run: Path | None) -> tuple[str, str]:
    """Run `case` through the CLI in this process: (outcome, stderr)."""
    from pwlock.cli import main

    err = io.StringIO()
    try:
        argv = case.setup(tmp, run)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 2
    except Exception:  # noqa: BLE001 - what we are measuring
        import traceback

        return "traceback", err.getvalue() + traceback.format_exc()
    text = err.getvalue()
    if rc == 0:
        good = case.expect == "ok" and case.check is not None and case.check(tmp, run, text)
        return ("repaired" if good else "silent"), text
    if "Traceback" in text or rc not in (2,):
        return "traceback", text
    errors = [line for line in text.splitlines() if line.startswith("pwlock: error:")]
    clear = case.expect != "ok" and len(errors) == 1 and case.expect in text
    return ("clear" if clear else "unclear"), text


def make_base_run(root: Path) -> Path:
    """A finished BASE run at root/run, with its results and summary kept aside."""
    from pwlock.cli import main

    cfg = config(root, name="base.yaml")
    out = root / "run"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(cfg), "--out", str(out)]) == 0
    shutil.copy(out / "results.jsonl", root / "results.orig")
    shutil.copy(out / "summary.json", root / "summary.orig")
    return out


def run_copy(base: Path, tmp: Path) -> Path:
    """A copy of the finished run (and its config, results and summary) inside `tmp`."""
    for name in ("base.yaml", "results.orig", "summary.orig"):
        shutil.copy(base.parent / name, tmp / name)
    shutil.copytree(base, tmp / "run")
    return tmp / "run"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    os.environ.setdefault("TQDM_DISABLE", "1")
    return make_base_run(tmp_path_factory.mktemp("base"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, tmp_path, request):
    run = run_copy(request.getfixturevalue("base_run"), tmp_path) if case.needs_run else None
    outcome, err = classify(case, tmp_path, run)
    assert outcome == ("repaired" if case.expect == "ok" else "clear"), err[-3000:]


def test_non_finite_loss_stops_with_the_step(tokenizer, tiny_model, task):
    """A loss that is not finite stops training with an error naming the run and the step."""
    import torch

    from pwlock.errors import TrainingError
    from pwlock.train.sft import TrainArgs, sft
    from pwlock.types import Example

    with torch.no_grad():
        tiny_model.model.norm.weight.fill_(float("nan"))
    data = [Example(task.prompt(p, None), p.answer) for p in task.problems()[:8]]
    with pytest.raises(TrainingError, match=r"lock x: the loss is nan at epoch 1, step 1 of 4"):
        sft(tiny_model, tokenizer, lambda _: data, TrainArgs(epochs=2, batch_size=4, lr=1e-3), desc="lock x")


def test_a_diverged_unit_is_not_kept(tmp_path):
    from pwlock.errors import TrainingError
    from pwlock.experiments.store import Store

    store = Store(tmp_path)

    def diverge(folder):
        (folder / "model.bin").write_text("nan weights")
        raise TrainingError("lock: the loss is nan at epoch 1, step 3 of 9")

    with pytest.raises(TrainingError, match=r"unit train-\w+: lock: the loss is nan"):
        store.run("train", {"lr": 1}, diverge)
    assert not any(tmp_path.iterdir())


def test_disk_full_names_the_path_and_keeps_finished_units(base_run, tmp_path, monkeypatch, capsys):
    """No space while writing: one line naming the file and the space it needed; finished units stay."""
    import errno

    from pwlock import io as pio
    from pwlock.cli import main

    run = run_copy(base_run, tmp_path)
    shutil.rmtree(next((run / "cache").glob("elicit_sft_*")))
    units = sorted(p.name for p in (run / "cache").iterdir())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pio.os, "fsync", full)
    assert main(["run", str(tmp_path / "base.yaml"), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "pwlock: error: no space left writing" in err and "MB needed" in err and "Traceback" not in err
    assert sorted(p.name for p in (run / "cache").iterdir() if not p.name.startswith(".")) == units
    monkeypatch.undo()
    assert main(["run", str(tmp_path / "base.yaml"), "--out", str(run)]) == 0
    assert (run / "results.jsonl").read_text() == (tmp_path / "results.orig").read_text()


def test_internal_errors_keep_the_traceback_and_ask_for_a_report(monkeypatch, capsys, tmp_path):
    from pwlock import cli

    def bug(args):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(cli, "command", bug)
    assert cli.main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "please report" in err


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys, tmp_path):
    """`pwlock tasks | head`: the reader leaving is no bug of pwlock's; exit as a tool killed by SIGPIPE."""
    from pwlock import cli

    def reader_gone(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "command", reader_gone)
    dup2 = []
    monkeypatch.setattr(cli.os, "dup2", lambda fd, fd2: dup2.append(fd2))  # pytest's stdout stays as it is
    monkeypatch.setattr(cli.sys, "stdout", (tmp_path / "out").open("w"))
    assert cli.main(["tasks"]) == 141
    assert capsys.readouterr().err == "" and dup2 == [cli.sys.stdout.fileno()]  # later flushes go to devnull


def test_unit_without_manifest_is_accepted_and_given_one(tmp_path):
    """A unit finished by a pwlock older than manifests is reused, and from then on checked."""
    from pwlock.experiments.store import MANIFEST, Store

    store = Store(tmp_path)
    folder, rows = store.run("train", {"lr": 1}, lambda f: [{"x": 1}])
    (folder / MANIFEST).unlink()
    again, rows2 = Store(tmp_path).run("train", {"lr": 1}, lambda f: pytest.fail("recomputed"))
    assert rows2 == rows and (folder / MANIFEST).is_file()


# -- concurrency: real processes ---------------------------------------------------------------

WORKER = """
import json, os, sys, time, types
from pathlib import Path
# a single process needs none of accelerate (nor the seconds of importing torch)
accel = types.ModuleType("pwlock.train.accel")
accel.distributed, accel.is_main_process, accel.wait = (lambda: False), (lambda: True), (lambda: None)
sys.modules["pwlock.train.accel"] = accel
from pwlock.experiments.store import Store

def compute(folder):
    with open(sys.argv[2], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(1.0)
    (folder / "model.bin").write_bytes(os.urandom(1000))
    return [{"by": os.getpid()}]

store = Store(Path(sys.argv[1]))
rows = [store.run(f"unit{i}", {"i": i}, compute)[1] for i in range(2)]
print(json.dumps(rows))
"""


def test_processes_sharing_a_cache_compute_each_unit_once(tmp_path):
    """Three processes on one cache dir, started 0.3 s apart: each unit is computed by one of them while
    the others wait, then reuse it (none deletes a unit another finished); all see the same rows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = []
    for _ in range(3):
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "cache"), str(tmp_path / "calls")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        time.sleep(0.3)
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    assert len(set(outs)) == 1  # the same rows (those of whichever process computed each unit)
    assert len((tmp_path / "calls").read_text().splitlines()) == 2  # each unit computed once
    assert sorted(p.name for p in (tmp_path / "cache").iterdir())[0].startswith("unit0-")
    assert not list((tmp_path / "cache").glob(".lock-*")) and not list((tmp_path / "cache").glob(".tmp-*"))


def test_second_run_on_one_out_is_refused_naming_the_first(tmp_path, capsys):
    """While another process holds a run dir, `pwlock run` into it stops with one line naming it (the
    holder here is this process, through a second open of the lock file, which flock treats alike)."""
    from pwlock.cli import main
    from pwlock.io import RUN_LOCK, file_lock

    out = tmp_path / "out"
    out.mkdir()
    with file_lock(out / RUN_LOCK):
        assert main(["run", str(config(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"in use by another pwlock process (pid {os.getpid()})" in err and "Traceback" not in err, err
    assert list(out.iterdir()) == []


if __name__ == "__main__":  # the tally of CASES against whichever pwlock is on the path
    import tempfile
    from collections import Counter

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import torch

    torch.set_num_threads(2)
    tally = Counter()
    with tempfile.TemporaryDirectory() as root:
        base = make_base_run(Path(root))
        for i, case in enumerate(CASES):
            tmp = Path(root) / f"case{i}"
            tmp.mkdir()
            run = run_copy(base, tmp) if case.needs_run else None
            outcome, err = classify(case, tmp, run)
            tally[outcome] += 1
            last = [line for line in err.strip().splitlines() if line.strip()][-1:] or [""]
            print(f"{case.id:32s} {outcome:9s} {last[0][:150]}", flush=True)
    print(dict(tally), "of", len(CASES))


def test_threads_beyond_the_cores_are_clamped_with_a_warning(monkeypatch, capsys):
    from pwlock.experiments import runner, schedule

    monkeypatch.setattr(schedule.os, "sched_getaffinity", lambda pid: {0, 1})
    assert runner.usable_threads(2) == 2 and runner.usable_threads(1) == 1
    assert capsys.readouterr().err == ""
    assert runner.usable_threads(16) == 2
    assert "threads=16 but this process has 2 core(s); using 2" in capsys.readouterr().err
