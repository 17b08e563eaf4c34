"""Content-addressed units of work, integrity-checked, computed once across processes.

A unit is one computation (train a base model, lock it, evaluate it, one elicitation
run) named by a hash of everything it depends on. Its folder appears under the cache
dir only when it is complete: the work happens in a temporary folder that is renamed
into place at the end, so a kill at any moment loses nothing that was finished and
leaves nothing that looks finished but is not.

Integrity: the last file written into a unit, before the rename, is `manifest.json`: the
size and blake2b hash of every other file. A unit is reused only if its files match it
(sizes and hashes; hashing a demo unit's few-MB model takes milliseconds against the
seconds or minutes that trained it). A unit that fails is reported and recomputed, or,
with `recompute=False` (`--no-recompute`), refused with its path. A unit finished by a
pwlock older than manifests has none: it is accepted if its rows read, and given a
manifest on that first reuse, so later damage is caught.

Concurrency (POSIX: `fcntl.flock`): a process about to compute a unit takes the lock file
`<cache>/.lock-<unit>`; another process that needs the same unit waits on it, then
reuses what the first one finished. Under `accelerate launch` the processes of one launch
compute each unit together (training is a collective) and take no locks: give each
launch its own cache dir, or let launches share one only for finished units.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pwlock.errors import CacheError, DataError, TrainingError
from pwlock.experiments.schedule import idle
from pwlock.io import TMP_PREFIX, disk_full, file_lock, read_jsonl, write_atomic, write_jsonl
from pwlock.train import accel

MANIFEST = "manifest.json"
UNIT = "unit.json"
ROWS = "rows.jsonl"
LOCK_PREFIX = ".lock-"


def digest(payload: Any) -> str:
    """Stable hash of a JSON-serialisable payload."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_hash(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


def manifest(folder: Path) -> dict[str, Any]:
    """Size and blake2b of every file under `folder` but the manifest itself."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {"files": {str(p.relative_to(folder)): {"size": p.stat().st_size, "blake2b": file_hash(p)}
                      for p in files}}


def check_manifest(folder: Path, hashes: bool = True) -> str | None:
    """Why `folder` does not match its manifest (None: it does): a missing, resized or changed file."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable {MANIFEST} ({type(e).__name__})"
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{name} has {path.stat().st_size} bytes, not {meta['size']}"
    if hashes:
        for name, meta in files.items():
            if file_hash(folder / name) != meta["blake2b"]:
                return f"{name} was changed after the unit finished"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log(msg: str) -> None:
    print(f"[pwlock] {msg}", file=sys.stderr, flush=True)


class Store:
    """A cache dir of finished units, `<name>-<hash12>/` each with `unit.json`, `rows.jsonl` and
    `manifest.json`. `recompute=False`: a unit that fails its integrity check is an error
    (CacheError naming it) instead of being recomputed."""

    def __init__(self, root: Path, recompute: bool = True, hashes: bool = True) -> None:
        self.root = root
        self.recompute = recompute
        self.hashes = hashes
        self._verified: set[str] = set()  # checked once per process: units do not change under a run
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise disk_full(e, root) or e from None
        self._clean_stale()

    def _clean_stale(self) -> None:
        """Remove temporary unit folders left by killed processes, and lock files nobody holds."""
        for tmp in self.root.glob(TMP_PREFIX + "*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if tmp.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
        if not accel.distributed():
            for lock in self.root.glob(LOCK_PREFIX + "*"):
                with file_lock(lock, blocking=False):
                    pass  # taken: nobody held it; released: removed

    def path(self, name: str, key: dict[str, Any]) -> Path:
        return self.root / f"{name}-{digest(key)[:12]}"

    def done(self, name: str, key: dict[str, Any]) -> bool:
        return (self.path(name, key) / UNIT).is_file()

    def _finished(self, final: Path) -> tuple[list[dict[str, Any]] | None, str | None]:
        """(rows, None) for a finished, intact unit; (None, None) for one not finished; (None, why)
        for one that fails its check."""
        if not (final / UNIT).is_file():
            return None, None
        if final.name not in self._verified:
            if (final / MANIFEST).is_file():
                why = check_manifest(final, self.hashes)
                if why is not None:
                    return None, why
            elif not (final / ROWS).is_file():
                return None, f"{ROWS} is missing"
            elif accel.is_main_process():  # finished by a pwlock without manifests: from now on, checked
                with contextlib.suppress(DataError):
                    read_jsonl(final / ROWS)
                    write_atomic(final / MANIFEST, json.dumps(manifest(final), indent=1))
        try:
            rows = read_jsonl(final / ROWS)
        except DataError as e:
            return None, str(e)
        self._verified.add(final.name)
        return rows, None

    def run(
        self, name: str, key: dict[str, Any], compute: Callable[[Path], list[dict[str, Any]]]
    ) -> tuple[Path, list[dict[str, Any]]]:
        """Return the unit's folder and rows, computing them first if the unit is not done (or fails
        its integrity check). `compute(folder)` may write files (a model) into `folder` and returns
        result rows."""
        final = self.path(name, key)
        if accel.distributed():
            return self._run(final, name, key, compute)
        rows, _ = self._finished(final)
        if rows is not None:
            return final, rows
        # one process computes; the others wait, their cores lent to the running jobs (schedule.idle)
        with file_lock(self.root / f"{LOCK_PREFIX}{final.name}", waiting=idle):
            return self._run(final, name, key, compute)

    def _run(self, final: Path, name: str, key: dict[str, Any],
             compute: Callable[[Path], list[dict[str, Any]]]) -> tuple[Path, list[dict[str, Any]]]:
        rows, why = self._finished(final)
        accel.wait()  # under `accelerate launch`: no process finishes a unit before all have looked
        if rows is not None:
            return final, rows
        if why is not None:
            if not self.recompute:
                raise CacheError(f"cached unit {final} fails its integrity check: {why} (delete it, or run "
                                 "without --no-recompute to recompute it)")
            log(f"cached unit {final.name} fails its integrity check ({why}): recomputing it")
        tmp = self.root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        start = time.time()
        try:
            rows = compute(tmp)
        except TrainingError as e:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing of a diverged run is kept, let alone as finished
            raise TrainingError(f"unit {final.name}: {e}") from None
        except OSError as e:
            raise disk_full(e, tmp) or e from None
        if not accel.is_main_process():  # under `accelerate launch`: the main process writes
            accel.wait()
            shutil.rmtree(tmp, ignore_errors=True)
            return final, read_jsonl(final / ROWS)
        seconds = time.time() - start
        rows = [{**r, "unit": final.name} for r in rows]
        write_jsonl(tmp / ROWS, rows)
        write_atomic(tmp / UNIT, json.dumps({"name": name, "key": key, "seconds": seconds}, indent=1, default=str))
        write_atomic(tmp / MANIFEST, json.dumps(manifest(tmp), indent=1))  # last: covers every other file
        if final.exists():  # an unfinished or damaged copy of this unit, which we hold the lock of
            shutil.rmtree(final)
        os.rename(tmp, final)
        self._verified.add(final.name)
        accel.wait()
        return final, rows

    def seconds(self, folder: Path) -> float:
        return float(json.loads((folder / UNIT).read_text())["seconds"])
