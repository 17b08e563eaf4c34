"""The paper's figures for a run, drawn from the results table with matplotlib."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pwlock.io import TMP_PREFIX  # noqa: E402
from pwlock.report.summary import lock_methods, select_epochs  # noqa: E402

LOCK_LABELS = {"sft": "locked via SFT", "from_scratch": "locked from scratch"}


def figure_sft_elicitation(results: pd.DataFrame, path: Path) -> Path | None:
    """Figure 3/6 analogue: correctness vs number of demonstrations (log x), one line per lock
    method with SEM error bars, dashed/dotted lines for the locked model with/without password."""
    elicited = results[results["elicitation"] == "sft"]
    if not len(elicited):
        return None
    chosen = select_epochs(elicited)
    locked = results[results["policy"] == "locked"]
    fig, ax = plt.subplots(figsize=(5.5, 4.6), dpi=150)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, method in enumerate(lock_methods(results)):
        df = chosen[chosen["lock_method"] == method]
        if not len(df):
            continue
        color = colors[i % len(colors)]
        source = ", ".join(df["demo_source"].unique())
        ax.errorbar(df["k"], df["mean"], yerr=df["sem"], marker="o", capsize=3, color=color,
                    label=f"unlocking model {LOCK_LABELS.get(method, method)} ({source} demos)")
        for with_pw, style in ((True, "--"), (False, ":")):
            c = locked[(locked["lock_method"] == method) & (locked["with_password"] == with_pw)]["correctness"]
            if len(c):
                ax.axhline(float(c.iloc[0]), color=color, linestyle=style, linewidth=1,
                           label=f"$\\pi_{{locked}}$ ({method}) {'w/' if with_pw else 'w/o'} pwd")
    ax.set_xscale("log", base=2)
    ks = sorted(int(k) for k in chosen["k"].unique())
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("Number of unlocking demonstrations")
    ax.set_ylabel("Correctness (greedy, no password)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    setting = results["setting"].iloc[0]
    ax.set_title(f"SFT elicitation: {setting}  (mean ± SEM over seeds)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in (path, path.with_suffix(".pdf")):
        tmp = target.with_name(TMP_PREFIX + target.name)
        fig.savefig(tmp, format=target.suffix[1:])
        os.replace(tmp, target)  # a killed report leaves the old figure, never half of one
    plt.close(fig)
    return path
