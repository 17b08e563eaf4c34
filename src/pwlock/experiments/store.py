"""Content-addressed units of work and atomic writes.

A unit is one computation (train a base model, lock it, evaluate it, one elicitation
run) named by a hash of everything it depends on. Its folder appears under the cache
dir only when it is complete: the work happens in a temporary folder that is renamed
into place at the end, so a kill at any moment loses nothing that was finished and
leaves nothing that looks finished but is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pwlock.io import TMP_PREFIX, read_jsonl, write_atomic, write_jsonl
from pwlock.train import accel


def digest(payload: Any) -> str:
    """Stable hash of a JSON-serialisable payload."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A cache dir of finished units, `<name>-<hash12>/` each with `unit.json` and `rows.jsonl`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._clean_stale()

    def _clean_stale(self) -> None:
        """Remove temporary unit folders left by killed processes."""
        for tmp in self.root.glob(TMP_PREFIX + "*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if tmp.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)

    def path(self, name: str, key: dict[str, Any]) -> Path:
        return self.root / f"{name}-{digest(key)[:12]}"

    def done(self, name: str, key: dict[str, Any]) -> bool:
        return (self.path(name, key) / "unit.json").is_file()

    def run(
        self, name: str, key: dict[str, Any], compute: Callable[[Path], list[dict[str, Any]]]
    ) -> tuple[Path, list[dict[str, Any]]]:
        """Return the unit's folder and rows, computing them first if the unit is not done.

        `compute(folder)` may write files (a model) into `folder` and returns result rows.
        """
        final = self.path(name, key)
        done = (final / "unit.json").is_file()
        accel.wait()  # under `accelerate launch`: no process finishes a unit before all have looked
        if done:
            return final, read_jsonl(final / "rows.jsonl")
        tmp = self.root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        start = time.time()
        rows = compute(tmp)
        if not accel.is_main_process():  # under `accelerate launch`: the main process writes
            accel.wait()
            shutil.rmtree(tmp, ignore_errors=True)
            return final, read_jsonl(final / "rows.jsonl")
        seconds = time.time() - start
        rows = [{**r, "unit": final.name} for r in rows]
        write_jsonl(tmp / "rows.jsonl", rows)
        write_atomic(tmp / "unit.json", json.dumps({"name": name, "key": key, "seconds": seconds}, indent=1, default=str))
        if final.exists():  # an unfinished leftover of the same unit (no unit.json): replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        accel.wait()
        return final, rows

    def seconds(self, folder: Path) -> float:
        return float(json.loads((folder / "unit.json").read_text())["seconds"])
