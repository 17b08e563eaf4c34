"""Files of a run dir and atomic writes (no torch here: the report uses these too)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

RUN_MARKER = "pwlock_run.json"
"""Marks a folder as a pwlock run dir; holds the resolved config."""
RESULTS = "results.jsonl"
"""The results table: one JSON row per measurement."""
SUMMARY = "summary.json"
TMP_PREFIX = ".tmp-"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX + path.name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
