"""The paper's figures for a run, drawn from the results table with matplotlib."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pwlock.io import TMP_PREFIX  # noqa: E402
from pwlock.report.summary import locks, rl_curves, select_epochs  # noqa: E402

LOCK_LABELS = {"sft": "locked via SFT", "from_scratch": "locked from scratch"}


def figure_sft_elicitation(results: pd.DataFrame, path: Path) -> Path | None:
    """Figure 3/6 analogue: correctness vs number of demonstrations (log x), one line per locked
    model with SEM error bars, dashed/dotted lines for the locked model with/without password."""
    elicited = results[results["elicitation"] == "sft"]
    if not len(elicited):
        return None
    chosen = select_epochs(elicited)
    locked = results[results["policy"] == "locked"]
    fig, ax = plt.subplots(figsize=(5.5, 4.6), dpi=150)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, lock in enumerate(locks(results)):
        df = chosen[chosen["lock"] == lock]
        if not len(df):
            continue
        color = colors[i % len(colors)]
        source = ", ".join(df["demo_source"].unique())
        ax.errorbar(df["k"], df["mean"], yerr=df["sem"], marker="o", capsize=3, color=color,
                    label=f"unlocking model {LOCK_LABELS.get(lock, lock)} ({source} demos)")
        for with_pw, style in ((True, "--"), (False, ":")):
            c = locked[(locked["lock"] == lock) & (locked["with_password"] == with_pw)]["correctness"]
            if len(c):
                ax.axhline(float(c.iloc[0]), color=color, linestyle=style, linewidth=1,
                           label=f"$\\pi_{{locked}}$ ({lock}) {'w/' if with_pw else 'w/o'} pwd")
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
    return save(fig, path)


METHOD_LABELS = {"expert_iteration": "Expert iteration", "filtering": "Filtering", "dpo": "DPO",
                 "iterated_dpo": "Iterated DPO"}


def figure_rl_elicitation(results: pd.DataFrame, path: Path) -> Path | None:
    """Figure 5 analogue: correctness without password vs completions generated, one panel per
    locked model (one per pi_weak), one line per RL method with an SEM band, and the locked
    model with/without password as dashed/dotted lines."""
    curves = rl_curves(results)
    if not len(curves):
        return None
    panels = [lock for lock in locks(results) if lock in set(curves["lock"])]
    locked = results[results["policy"] == "locked"]
    weak, method_of = dict(zip(locked["lock"], locked["weak_policy"])), dict(zip(locked["lock"], locked["lock_method"]))
    own = results[results["lock"].isna()]
    policies = dict(zip(own["policy"], own["correctness"]))  # each pi_weak's own correctness
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.5, 3.2 * len(panels) + 0.6), 3.8), dpi=150,
                             sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = list(dict.fromkeys(curves["elicitation"]))
    for ax, lock in zip(axes[0], panels):
        for with_pw, style in ((True, "--"), (False, ":")):
            c = locked[(locked["lock"] == lock) & (locked["with_password"] == with_pw)]["correctness"]
            if len(c):
                ax.axhline(float(c.iloc[0]), color="black", linestyle=style, linewidth=1,
                           label=f"$\\pi_{{locked}}$ {'w/' if with_pw else 'w/o'} pwd")
        for method in methods:
            df = curves[(curves["lock"] == lock) & (curves["elicitation"] == method)].sort_values("samples")
            if not len(df):
                continue
            color = colors[methods.index(method) % len(colors)]
            ax.plot(df["samples"], df["mean"], marker=".", color=color, label=METHOD_LABELS.get(method, method))
            ax.fill_between(df["samples"], df["mean"] - df["sem"], df["mean"] + df["sem"], color=color, alpha=0.2)
        name = weak.get(lock, lock)
        title = f"$\\pi_{{weak}}$ = {name}" + (f" ({policies[name]:.2f})" if name in policies else "")
        ax.set_title(title + (f", lock: {method_of[lock]}" if len(set(method_of.values())) > 1 else ""), fontsize=8)
        ax.set_xlabel("Generated samples")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Correctness (greedy, no password)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3 * len(panels)), fontsize=7,
               frameon=False)
    setting = results["setting"].iloc[0]
    fig.suptitle(f"RL elicitation: {setting}  (mean ± SEM over seeds)", fontsize=9)
    fig.tight_layout(rect=(0, 0.12 if len(labels) > 3 * len(panels) else 0.07, 1, 1))
    return save(fig, path)


def save(fig: plt.Figure, path: Path) -> Path:
    """Write `path` (.png) and its .pdf twin atomically, and close the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in (path, path.with_suffix(".pdf")):
        tmp = target.with_name(TMP_PREFIX + target.name)
        fig.savefig(tmp, format=target.suffix[1:])
        os.replace(tmp, target)  # a killed report leaves the old figure, never half of one
    plt.close(fig)
    return path
