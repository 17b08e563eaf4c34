"""Files of a run dir and atomic writes (no torch here: the report uses these too)."""

from __future__ import annotations

import csv
import json
import os
import re
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


DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a local dataset file (.jsonl, .json holding one row or a list, .parquet, .csv), or
    of every such file under a folder, in natural path order (9.json before 10.json): the local
    twin of a hub dataset for every task loader."""
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.suffix in DATA_SUFFIXES]
        files.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))])
        return [row for f in files for row in read_rows(f)]
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return data if isinstance(data, list) else [data]
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    raise ValueError(f"unsupported file type {path} (want {', '.join(DATA_SUFFIXES)} or a folder)")
