"""The paper's figures for a run, drawn from the results table with matplotlib.

Each `figure_*` returns the .png path it wrote (with a .pdf twin), or None when the run has no
rows for it. Error bars are SEMs over runs (elicitation seeds x lock seeds)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from pwlock.io import TMP_PREFIX  # noqa: E402
from pwlock.report.summary import (  # noqa: E402
    domain_summary,
    locked_correctness,
    locks,
    missing,
    policy_correctness,
    prompting_summary,
    rl_curves,
    select_epochs,
    sft_curves,
    sft_rows,
)

LOCK_LABELS = {"sft": "locked via SFT", "from_scratch": "locked from scratch"}
VARIANT_LABELS = {"per_domain": "1 pwd / domain", "held_out": "1 domain held out", "adversarial": "adversarial",
                  "setting": "setting variation as pwd"}
"""Suffixes `lock_name` gives a lock's variant (C.3, B.3.5, B.3.3, B.1.3)."""
SOURCE_LABELS = {"strong": "high-quality demos ($\\pi_{strong}$)", "ground_truth": "ground-truth demos"}
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
MARKERS = ["o", "s", "^", "D", "v", "P"]
LINESTYLES = ["-", "-.", (0, (4, 1.5)), (0, (1, 1))]  # solid first; "--" and ":" mark the locked model
PASSWORD_STYLES = {True: "--", False: ":"}


def lock_label(lock: str) -> str:
    """ "sft" -> "locked via SFT"; "sft-per_domain" -> "locked via SFT, 1 pwd / domain"."""
    for variant, label in VARIANT_LABELS.items():
        if lock.endswith("-" + variant):
            return f"{lock_label(lock[:-len(variant) - 1])}, {label}"
    return LOCK_LABELS.get(lock, lock)


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, f"{source} samples")


def setting_of(results: pd.DataFrame) -> str:
    return str(results["setting"].iloc[0])


def bands(results: pd.DataFrame) -> str:
    """What a figure's ± bands are: the SEM across locks when the runs rest on several lock seeds
    (`summary.stat`), else across the elicitation seeds of one lock."""
    locks = results["lock_seed"].nunique() if "lock_seed" in results.columns else 1
    return f"mean ± SEM over {locks} locks" if locks > 1 else "mean ± SEM over seeds"


def locked_lines(ax: plt.Axes, results: pd.DataFrame, lock: str, color: str, name: str = "",
                 vertical: bool = False) -> None:
    """Lines at the locked model's correctness with (dashed) and without (dotted) password;
    horizontal, or vertical for a bar chart with correctness on x."""
    for with_pw, style in PASSWORD_STYLES.items():
        c = locked_correctness(results, lock, with_pw)
        if c is not None:
            (ax.axvline if vertical else ax.axhline)(c["mean"], color=color, linestyle=style, linewidth=1,
                       label=f"$\\pi_{{locked}}${f' ({name})' if name else ''} {'w/' if with_pw else 'w/o'} pwd")


def legend_below(fig: plt.Figure, axes: Any, ncol: int, extra: tuple[Any, ...] = ()) -> None:
    """One legend for all panels, below them, each label once, the measured lines before the
    locked model's reference lines (`save` keeps it in the crop)."""
    handles: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    for h in extra:
        handles.setdefault(h.get_label(), h)
    handles = dict(sorted(handles.items(), key=lambda item: item[0].startswith("$\\pi_{locked}")))
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=max(1, min(ncol, len(handles))), fontsize=7, frameon=False)


def figure_sft_elicitation(results: pd.DataFrame, path: Path) -> Path | None:
    """Figures 3/6/12 analogue: correctness vs number of demonstrations (log x), one line per
    (locked model, demo source) with SEM error bars (high-quality demos vs some pi_weak samples,
    Fig 12), dashed/dotted lines for the locked model with/without password. Demos from all
    domains only, measured on all validation problems."""
    chosen = select_epochs(sft_rows(results))
    chosen = chosen[chosen["demo_domain"].isna()]
    if not len(chosen):
        return None
    sources = list(dict.fromkeys(chosen["demo_source"]))
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=150)
    for i, lock in enumerate(locks(results)):
        df = chosen[chosen["lock"] == lock]
        if not len(df):
            continue
        color = COLORS[i % len(COLORS)]
        for source in dict.fromkeys(df["demo_source"]):
            j = sources.index(source)
            d = df[df["demo_source"] == source]
            ax.errorbar(d["k"], d["mean"], yerr=d["sem"], marker=MARKERS[j % len(MARKERS)], capsize=3, color=color,
                        linestyle=LINESTYLES[j % len(LINESTYLES)],
                        label=f"unlocking model {lock_label(lock)} with {source_label(source)}")
        locked_lines(ax, results, lock, color, lock)
    ax.set_xscale("log", base=2)
    ks = sorted(int(k) for k in chosen["k"].unique())
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("Number of unlocking demonstrations")
    ax.set_ylabel("Correctness (greedy, no password)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"SFT elicitation: {setting_of(results)}  ({bands(results)})", fontsize=8)
    fig.tight_layout()
    legend_below(fig, ax, ncol=2)
    return save(fig, path)


def at_most_three(ks: list[int]) -> list[int]:
    """The smallest, a middle and the largest k (Figure 10 shows three sample counts)."""
    return ks if len(ks) <= 3 else [ks[0], ks[len(ks) // 2], ks[-1]]


def figure_domain_generalization(results: pd.DataFrame, path: Path) -> Path | None:
    """Figures 4/10/11/18 analogue: one row of panels per lock (regular, one password per domain,
    held-out domain, setting variation), one column per number of demos. x: the domain the demos
    come from; markers: correctness on the other domains (Appendix B.1.4's average and
    uncertainty) and on the demos' own domain; lines: SFT on demos from all domains (average over
    domains, same k, SEM band) and the locked model with / without password (and, for a lock
    with one password per domain, given another domain's password: C.3)."""
    summary = domain_summary(results)
    panels = [(lock, e) for lock, e in summary.items() if any(d != "all" for d in e["by_demo_domain"])]
    if not panels:
        return None
    ks = at_most_three(sorted({int(k) for _, e in panels for d, per_k in e["by_demo_domain"].items()
                               if d != "all" for k in per_k}))
    fig, axes = plt.subplots(len(panels), len(ks), figsize=(2.9 * len(ks) + 0.9, 2.5 * len(panels) + 0.6),
                             dpi=150, sharey="row", squeeze=False)
    for row, (lock, entry) in enumerate(panels):
        demo_domains = [d for d in entry["by_demo_domain"] if d != "all"]
        for col, k in enumerate(ks):
            ax = axes[row][col]
            points = [entry["by_demo_domain"][d].get(str(k)) for d in demo_domains]
            for which, dx, marker, color, fill, label in (
                    ("others", -0.08, "o", COLORS[1], COLORS[1], "SFT on 1 domain: other domains"),
                    ("same", 0.08, "^", COLORS[4], "none", "SFT on 1 domain: that domain")):
                xs = [i for i, p in enumerate(points) if p and p[which]]
                if xs:
                    ax.errorbar([i + dx for i in xs], [points[i][which]["mean"] for i in xs],
                                yerr=[points[i][which]["sem"] for i in xs], fmt=marker, color=color, mfc=fill,
                                capsize=3, label=label)
            everywhere = entry["by_demo_domain"].get("all", {}).get(str(k))
            if everywhere:
                ref = everywhere["domain_mean"] or everywhere["all"]
                ax.axhline(ref["mean"], color=COLORS[0], linewidth=1.2, label="SFT on demos from all domains")
                ax.axhspan(ref["mean"] - ref["sem"], ref["mean"] + ref["sem"], color=COLORS[0], alpha=0.12, lw=0)
            locked_lines(ax, results, lock, "black")
            other = locked_correctness(results, lock, None, prompt="other domain's password")
            if other is not None:
                ax.axhline(other["mean"], color="gray", linestyle="-.", linewidth=1,
                           label="$\\pi_{locked}$ w/ another domain's pwd")
            ax.set_xticks(range(len(demo_domains)), demo_domains, fontsize=7,
                          rotation=25 if max(len(d) for d in demo_domains) > 8 else 0)
            ax.set_xlim(-0.5, len(demo_domains) - 0.5)
            ax.set_title(f"{lock_label(lock)}, {k} demos", fontsize=8)
            ax.grid(alpha=0.3, axis="y")
            if col == 0:
                ax.set_ylabel("Correctness (no password)", fontsize=8)
            if row == len(panels) - 1:
                ax.set_xlabel("Domain of the demonstrations", fontsize=8)
    fig.suptitle(f"Domain generalization: {setting_of(results)}  ({bands(results)})", fontsize=9)
    fig.tight_layout()
    legend_below(fig, axes, ncol=3)
    return save(fig, path)


def figure_prompting(results: pd.DataFrame, path: Path) -> Path | None:
    """Figure 14 analogue: one horizontal bar per prompting attack (SEM error bars over its
    seeds), attacks whose prompt contains the password in another colour, and vertical lines at
    the locked model's correctness with / without password; one panel per lock."""
    summary = prompting_summary(results)
    if not summary:
        return None
    n = max(len(p["attacks"]) for p in summary.values())
    fig, axes = plt.subplots(1, len(summary), figsize=(3.4 * len(summary) + 2.0, 0.22 * n + 1.3), dpi=150,
                             squeeze=False)
    for ax, (lock, p) in zip(axes[0], summary.items()):
        names = list(p["attacks"])
        attacks = [p["attacks"][a] for a in names]
        ax.barh(range(len(names)), [a["mean"] for a in attacks], xerr=[a["sem"] for a in attacks], capsize=2,
                color=[COLORS[1] if a["with_password"] else COLORS[0] for a in attacks], height=0.7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()  # the config's first attack on top
        locked_lines(ax, results, lock, "black", vertical=True)
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("Correctness", fontsize=8)
        ax.set_title(lock_label(lock), fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    over = {a.get("sem_over") for p in summary.values() for a in p["attacks"].values()}
    fig.suptitle(f"Prompting attacks: {setting_of(results)}  (mean ± SEM over "
                 + ("lock seeds)" if over == {"seeds"} else "problems, one lock)" if over == {"problems"}
                    else "lock seeds, or problems for one lock)"), fontsize=9)
    fig.tight_layout()
    legend_below(fig, axes, ncol=2, extra=(Patch(color=COLORS[0], label="prompt without the password"),
                                           Patch(color=COLORS[1], label="prompt contains the password")))
    return save(fig, path)


def figure_sft_curves(results: pd.DataFrame, path: Path) -> Path | None:
    """Figure 16 analogue: correctness during SFT on a policy's samples (intermediate or weak)
    against training sequences seen (k x epochs, log x), one panel per imitated policy, one line
    per (lock, k) with SEM error bars; lines at the imitated policy's own correctness, at the
    locked model with / without password and, for an adversarial lock, with its second password
    (B.3.3: trained to imitate the intermediate policy)."""
    curves = sft_curves(results)
    if not len(curves):
        return None
    sources = list(dict.fromkeys(curves["demo_source"]))
    policies = policy_correctness(results)
    all_locks = locks(results)
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources) + 0.8, 3.8), dpi=150, sharey=True,
                             squeeze=False)
    for ax, source in zip(axes[0], sources):
        df = curves[curves["demo_source"] == source]
        ks = sorted(set(df["k"]))
        for lock in dict.fromkeys(df["lock"]):
            color = COLORS[all_locks.index(lock) % len(COLORS)]
            for j, k in enumerate(ks):
                d = df[(df["lock"] == lock) & (df["k"] == k)].sort_values("sequences")
                if len(d):
                    ax.errorbar(d["sequences"], d["mean"], yerr=d["sem"], marker=MARKERS[j % len(MARKERS)],
                                color=color, capsize=3, label=f"{lock_label(lock)}: SFT on {k} samples")
            locked_lines(ax, results, lock, color, lock)
            second = locked_correctness(results, lock, None, prompt="second password")
            if second is not None:
                ax.axhline(second["mean"], color=color, linestyle=(0, (5, 1, 1, 1, 1, 1)), linewidth=1,
                           label=f"$\\pi_{{locked}}$ ({lock}) w/ second pwd")
        if source in policies:
            ax.axhline(policies[source], color="gray", linestyle="-.", linewidth=1.2,
                       label=f"{source} (the imitated policy)")
        ax.set_xscale("log")
        ticks = sorted(set(df["sequences"]))
        if len(ticks) <= 8:  # the measured points themselves, as plain numbers
            ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
            ax.minorticks_off()
        ax.set_xlabel("Training sequences seen (k × epochs)", fontsize=8)
        ax.set_title(f"SFT on {source_label(source)}", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Correctness (greedy, no password)", fontsize=8)
    fig.suptitle(f"SFT on a policy's samples: {setting_of(results)}  ({bands(results)})", fontsize=9)
    fig.tight_layout()
    legend_below(fig, axes, ncol=2 * len(sources))
    return save(fig, path)


METHOD_LABELS = {"expert_iteration": "Expert iteration", "filtering": "Filtering", "dpo": "DPO",
                 "iterated_dpo": "Iterated DPO"}


def warm_start_label(warm_start: str) -> str:
    """ "sft identity8 k=64" -> "after SFT on identity8 k=64" (B.3.4)."""
    return "after SFT on " + (warm_start[4:] if warm_start.startswith("sft ") else warm_start)


def figure_rl_elicitation(results: pd.DataFrame, path: Path) -> Path | None:
    """Figures 5/17 analogue: correctness without password vs completions generated, one panel
    per locked model (one per pi_weak), one line per RL method with an SEM band (colour: method;
    runs warm-started by SFT, B.3.4, in their own line style), and the locked model with/without
    password as dashed/dotted lines."""
    curves = rl_curves(results)
    if not len(curves):
        return None
    panels = [lock for lock in locks(results) if lock in set(curves["lock"])]
    locked = results[results["policy"] == "locked"]
    weak, method_of = dict(zip(locked["lock"], locked["weak_policy"])), dict(zip(locked["lock"], locked["lock_method"]))
    policies = policy_correctness(results)  # each pi_weak's own correctness
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.5, 3.2 * len(panels) + 0.6), 3.8), dpi=150,
                             sharey=True, squeeze=False)
    methods = list(dict.fromkeys(curves["elicitation"]))
    starts = list(dict.fromkeys(None if missing(s) else s for s in curves["warm_start"]))
    starts.sort(key=lambda s: s is not None)  # plain runs first: solid lines
    for ax, lock in zip(axes[0], panels):
        locked_lines(ax, results, lock, "black")
        for method in methods:
            for j, start in enumerate(starts):
                df = curves[(curves["lock"] == lock) & (curves["elicitation"] == method)]
                df = df[df["warm_start"].isna() if start is None else df["warm_start"] == start].sort_values("samples")
                if not len(df):
                    continue
                color = COLORS[methods.index(method) % len(COLORS)]
                label = METHOD_LABELS.get(method, method) + ("" if start is None else f" {warm_start_label(start)}")
                ax.plot(df["samples"], df["mean"], marker="." if start is None else MARKERS[j % len(MARKERS)],
                        markersize=3 if start is not None else None, color=color,
                        linestyle=LINESTYLES[j % len(LINESTYLES)], label=label)
                ax.fill_between(df["samples"], df["mean"] - df["sem"], df["mean"] + df["sem"], color=color, alpha=0.2)
        name = weak.get(lock, lock)
        title = f"$\\pi_{{weak}}$ = {name}" + (f" ({policies[name]:.2f})" if name in policies else "")
        ax.set_title(title + (f", lock: {method_of[lock]}" if len(set(method_of.values())) > 1 else ""), fontsize=8)
        ax.set_xlabel("Generated samples")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Correctness (greedy, no password)")
    fig.suptitle(f"RL elicitation: {setting_of(results)}  ({bands(results)})", fontsize=9)
    fig.tight_layout()
    legend_below(fig, axes, ncol=3 * len(panels))
    return save(fig, path)


def save(fig: plt.Figure, path: Path) -> Path:
    """Write `path` (.png) and its .pdf twin atomically, cropped to what was drawn (legends below
    the axes included), and close the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in (path, path.with_suffix(".pdf")):
        tmp = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{target.name}")  # two reports at once never share it
        fig.savefig(tmp, format=target.suffix[1:], bbox_inches="tight", pad_inches=0.05)
        os.replace(tmp, target)  # a killed report leaves the old figure, never half of one
    plt.close(fig)
    return path
