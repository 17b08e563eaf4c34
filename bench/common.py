"""Helpers the bench scripts share (they import it as a sibling: `python bench/<script>.py`)."""

from __future__ import annotations

import subprocess


def git_sha() -> str:
    """The commit the figures were measured at, `-dirty` when the tree had changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
