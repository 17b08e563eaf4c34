"""Content-addressed units: atomic completion, reuse, and no half-written results."""

import json

import pytest

from pwlock.experiments.store import Store, digest
from pwlock.io import read_jsonl, write_atomic


def test_unit_is_computed_once_and_reused(tmp_path):
    store = Store(tmp_path)
    calls = []

    def compute(folder):
        calls.append(folder)
        (folder / "model.txt").write_text("weights")
        return [{"x": 1}]

    folder, rows = store.run("train", {"lr": 1}, compute)
    assert rows == [{"x": 1, "unit": folder.name}] and (folder / "model.txt").read_text() == "weights"
    again, rows2 = store.run("train", {"lr": 1}, compute)
    assert again == folder and rows2 == rows and len(calls) == 1
    other, _ = store.run("train", {"lr": 2}, compute)
    assert other != folder and len(calls) == 2
    assert json.loads((folder / "unit.json").read_text())["key"] == {"lr": 1}


def test_interrupted_unit_leaves_nothing_that_looks_done(tmp_path):
    store = Store(tmp_path)

    def crash(folder):
        (folder / "model.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.run("train", {"lr": 1}, crash)
    assert not store.done("train", {"lr": 1})
    assert not store.path("train", {"lr": 1}).exists()
    folder, rows = store.run("train", {"lr": 1}, lambda f: [{"ok": True}])
    assert rows[0]["ok"] and store.done("train", {"lr": 1})


def test_stale_tmp_dirs_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / ".tmp-train-abc-999999999"
    stale.mkdir()
    Store(tmp_path)
    assert not stale.exists()


def test_digest_is_order_independent():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_write_atomic_replaces_whole_file(tmp_path):
    p = tmp_path / "rows.jsonl"
    write_atomic(p, '{"a": 1}\n')
    write_atomic(p, '{"a": 2}\n')
    assert read_jsonl(p) == [{"a": 2}]
    assert [x.name for x in tmp_path.iterdir()] == ["rows.jsonl"]


def test_damaged_unit_is_recomputed_or_refused(tmp_path):
    """A finished unit whose files no longer match its manifest (resized, or changed in place) is
    recomputed; with recompute=False it is a CacheError naming it."""
    from pwlock.errors import CacheError

    calls = []

    def compute(folder):
        calls.append(1)
        (folder / "model.bin").write_bytes(b"weights" * 100)
        return [{"x": 1}]

    folder, rows = Store(tmp_path).run("train", {"lr": 1}, compute)
    assert json.loads((folder / "manifest.json").read_text())["files"]["model.bin"]["size"] == 700
    (folder / "model.bin").write_bytes(b"WEIGHTS" * 100)  # same size, other bytes
    with pytest.raises(CacheError, match=f"{folder.name}.*model.bin was changed"):
        Store(tmp_path, recompute=False).run("train", {"lr": 1}, compute)
    again, rows2 = Store(tmp_path).run("train", {"lr": 1}, compute)
    assert again == folder and rows2 == rows and len(calls) == 2
    assert (folder / "model.bin").read_bytes() == b"weights" * 100
    (folder / "rows.jsonl").write_text("")  # emptied rows: found by size
    Store(tmp_path).run("train", {"lr": 1}, compute)
    assert len(calls) == 3 and read_jsonl(folder / "rows.jsonl") == rows


def test_a_unit_is_checked_once_per_store(tmp_path, monkeypatch):
    from pwlock.experiments import store as st

    store = Store(tmp_path)
    store.run("train", {"lr": 1}, lambda f: [{"x": 1}])
    fresh = Store(tmp_path)
    checks = []
    monkeypatch.setattr(st, "check_manifest", lambda *a: checks.append(a) or None)
    fresh.run("train", {"lr": 1}, lambda f: pytest.fail("recomputed"))
    fresh.run("train", {"lr": 1}, lambda f: pytest.fail("recomputed"))
    assert len(checks) == 1
