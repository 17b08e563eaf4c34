"""A tiny experiment config for end-to-end tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

TINY = {
    "name": "tiny",
    "task": {"n_problems": 1000},
    "model": {"hidden_size": 32, "layers": 2, "heads": 2},
    "lock": {
        "pretrain": {"epochs": 2, "batch_size": 64, "lr": 3e-3},
        "sft": {"epochs": 1, "batch_size": 64, "lr": 1e-3},
        "from_scratch": {"epochs": 1, "batch_size": 64, "lr": 3e-3},
    },
    "elicit": {"sft": {"ks": [2, 4], "seeds": [0, 1], "epochs": {2: [1, 2], 4: [1, 2]}, "batch_size": 4}},
    "eval": {"max_problems": 40, "max_new_tokens": 10},
    "threads": 2,
}


def write_config(path: Path, **changes) -> Path:
    cfg = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path.write_text(yaml.safe_dump(cfg))
    return path
