"""Files of a run dir and atomic writes (no torch here: the report uses these too)."""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pwlock.errors import BusyError, DataError, DiskFullError

RUN_MARKER = "pwlock_run.json"
"""Marks a folder as a pwlock run dir; holds the resolved config."""
RESULTS = "results.jsonl"
"""The results table: one JSON row per measurement."""
SUMMARY = "summary.json"
TMP_PREFIX = ".tmp-"
RUN_LOCK = ".lock-run"
"""Held (flock) by the process that runs or reports into a run dir."""


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True,
              waiting: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext) -> Iterator[bool]:
    """Hold an exclusive `flock` on `path` (POSIX); yields False at once if `blocking` is False and
    another process holds it, else waits for it inside `waiting()` (the scheduler's `idle`: a waiting
    worker's core serves the others). The file holds the holder's pid and is removed on release; a
    waiter that wakes on a removed file locks the new one, so two processes never both hold it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                os.close(fd)
                yield False
                return
            with waiting():
                fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it while we waited: lock the current file
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


_held_run_dirs: dict[Path, int] = {}


@contextlib.contextmanager
def hold_run_dir(out: Path) -> Iterator[None]:
    """Be the only process running or reporting into `out` (re-entrant within a process): another
    one holding it is a BusyError naming its pid."""
    key = out.resolve()
    if key in _held_run_dirs:
        _held_run_dirs[key] += 1
        try:
            yield
        finally:
            _held_run_dirs[key] -= 1
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _lock_run_dir(out, key):
            yield
    finally:
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                out.rmdir()


@contextlib.contextmanager
def _lock_run_dir(out: Path, key: Path) -> Iterator[None]:
    with file_lock(out / RUN_LOCK, blocking=False) as got:
        if not got:
            pid = "unknown"
            with contextlib.suppress(OSError):
                pid = (out / RUN_LOCK).read_text().strip() or pid
            raise BusyError(f"{out} is in use by another pwlock process (pid {pid}): wait for it to finish, "
                            "or use another --out")
        _held_run_dirs[key] = 1
        try:
            yield
        finally:
            del _held_run_dirs[key]


def ours(path: Path) -> bool:
    """A file pwlock keeps beside a run's outputs for a moment (a lock, a temp file)."""
    return path.name.startswith((TMP_PREFIX, RUN_LOCK))


def disk_full(e: OSError, path: Path, needed: int | None = None) -> DiskFullError | None:
    """The DiskFullError for `e` if it is one (no space, or over quota), naming `path` and what it needed."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    try:
        free = shutil.disk_usage(path.parent if not path.exists() else path).free
    except OSError:
        free = None
    need = "" if needed is None else f"; {needed / 1e6:.1f} MB needed"
    have = "" if free is None else f", {free / 1e6:.1f} MB free"
    return DiskFullError(f"no space left writing {path}{need}{have} (finished units are intact: free space and "
                         "re-run to resume)")


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part."""
    data = text.encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX + path.name)
    except OSError as e:
        raise disk_full(e, path, len(data)) or e from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and (full := disk_full(e, path, len(data))):
            raise full from None
        raise


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_text(path: Path) -> str:
    """A UTF-8 text file; a missing or undecodable file is a DataError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file, each a JSON object; a bad line is a DataError naming file and line."""
    rows = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{i}: a row must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_json(path: Path) -> Any:
    """A JSON file; a malformed one is a DataError naming file and line."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a local dataset file (.jsonl, .json holding one row or a list, .parquet, .csv), or
    of every such file under a folder, in natural path order (9.json before 10.json): the local
    twin of a hub dataset for every task loader."""
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.suffix in DATA_SUFFIXES]
        files.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))])
        return [row for f in files for row in read_rows(f)]
    if path.suffix not in DATA_SUFFIXES:
        raise DataError(f"unsupported file type {path} (want {', '.join(DATA_SUFFIXES)} or a folder)")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".json":
        data = read_json(path)
        rows = data if isinstance(data, list) else [data]
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DataError(f"{path}: item {bad} is a {type(rows[bad]).__name__}, not an object of fields")
        return rows
    if path.suffix == ".parquet":
        import pandas as pd

        try:
            return pd.read_parquet(path).to_dict("records")
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable parquet file ({' '.join(str(e).split())[:200]})") from None
    return read_csv(path)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file with a header; a row with more or fewer cells is a DataError naming its line."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = []
            for r in reader:
                if None in r or None in r.values():
                    raise DataError(f"{path}:{reader.line_num}: {len(reader.fieldnames or [])} columns in the header, "
                                    "a different number in this row")
                rows.append(r)
            return rows
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{path}: not valid CSV ({e})") from None


def local_source(source: str | None) -> Path | None:
    """The local file or folder a task's `source` names, or None for a hub dataset id.

    A source that looks like a path (absolute, ./ or ../ or ~, a data file suffix, or more than one
    `/`, which no hub id has) but does not exist is a DataError, not a hub id to look up.
    """
    if source is None:
        return None
    path = Path(source).expanduser()
    if path.exists():
        return path
    looks_local = (source.startswith(("/", ".", "~")) or path.suffix in DATA_SUFFIXES or source.count("/") > 1
                   or os.sep != "/" and os.sep in source)
    if looks_local:
        raise DataError(f"task.source: {source}: no such file or folder")
    return None
