"""Headline numbers from the results table (pandas only; never imports torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pwlock.experiments.config import RL_METHODS
from pwlock.lock import lock_name


def sem(values: pd.Series) -> float:
    """Standard error of the mean over seeds (0 for a single seed)."""
    n = len(values)
    return float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0


def with_locks(results: pd.DataFrame) -> pd.DataFrame:
    """The results with a `lock` column naming each row's locked model (see `lock_name`)."""
    out = results.copy()
    out["lock"] = [lock_name(m, w if isinstance(w, str) else None) if isinstance(m, str) else None
                   for m, w in zip(out["lock_method"], out.get("weak_policy", [None] * len(out)))]
    return out


def locks(results: pd.DataFrame) -> list[str]:
    """Locked models in the order the run produced them (the config's order)."""
    return list(dict.fromkeys(results["lock"].dropna()))


def select_epochs(elicited: pd.DataFrame) -> pd.DataFrame:
    """Appendix G.3: per (lock, source, k), keep the epoch count with the best mean
    correctness over seeds. One row per group: k, epochs, mean, sem, seeds."""
    out = []
    keys = ["lock", "demo_source", "k"]
    for group, df in elicited.groupby(keys, sort=True):
        by_epoch = df.groupby("epochs")["correctness"]
        means = by_epoch.mean()
        best = means.idxmax()
        chosen = df[df["epochs"] == best]["correctness"]
        out.append({**dict(zip(keys, group)), "epochs": int(best), "mean": float(chosen.mean()),
                    "sem": sem(chosen), "seeds": int(len(chosen)),
                    "all_epochs": {int(e): float(m) for e, m in means.items()}})
    return pd.DataFrame(out, columns=[*keys, "epochs", "mean", "sem", "seeds", "all_epochs"])


def demos_ratio(curve_a: pd.DataFrame, curve_b: pd.DataFrame, floor: float = -1.0) -> list[dict[str, float]]:
    """How many more demonstrations curve `b` needs than curve `a` for the same correctness.

    For each point (k_b, c) of `b` with c above `floor` (e.g. the locked models' correctness
    without password: below it nothing was elicited) and within `a`'s range, k_a(c) is read
    off `a` by linear interpolation in log k (a made monotone by a running max); the ratio
    is k_b / k_a(c).
    """
    a = curve_a.sort_values("k")
    ks, cs = np.log(a["k"].to_numpy(float)), np.maximum.accumulate(a["mean"].to_numpy(float))
    out = []
    for k_b, c in zip(curve_b["k"], curve_b["mean"]):
        if len(cs) < 2 or c <= floor or not cs[0] <= c <= cs[-1]:
            continue
        i = int(np.searchsorted(cs, c, side="left"))
        if i == 0:
            k_a = float(np.exp(ks[0]))
        else:
            span = cs[i] - cs[i - 1]
            t = (c - cs[i - 1]) / span if span > 0 else 0.0
            k_a = float(np.exp(ks[i - 1] + t * (ks[i] - ks[i - 1])))
        out.append({"k": int(k_b), "correctness": float(c), "equivalent_k": k_a, "ratio": float(k_b) / k_a})
    return out


def rl_curves(results: pd.DataFrame) -> pd.DataFrame:
    """RL elicitation traces: mean and SEM over seeds of correctness per number of generated
    samples, per (lock, method, reward), at the learning rate whose final correctness has the
    best mean over seeds (Appendix G.3; only DPO methods try several).
    Columns: lock, elicitation, reward, lr, samples, mean, sem, seeds."""
    keys = ["lock", "elicitation", "reward"]
    out = []
    rl = results[results["elicitation"].isin(RL_METHODS)]
    for group, df in rl.groupby(keys, sort=False) if len(rl) else []:
        finals = df[df["samples"] == df.groupby(["lr", "seed"])["samples"].transform("max")]
        best_lr = finals.groupby("lr")["correctness"].mean().idxmax()
        for samples, points in df[df["lr"] == best_lr].groupby("samples"):
            out.append({**dict(zip(keys, group)), "lr": float(best_lr), "samples": int(samples),
                        "mean": float(points["correctness"].mean()), "sem": sem(points["correctness"]),
                        "seeds": int(len(points))})
    return pd.DataFrame(out, columns=[*keys, "lr", "samples", "mean", "sem", "seeds"])


def summarize(results: pd.DataFrame, wall_seconds: float | None = None) -> dict[str, Any]:
    """The `summary.json` of a run."""
    results = with_locks(results)
    policies = results[~results["policy"].isin(["locked", "elicited"])]  # pi_strong and each pi_weak
    by_policy = {str(p): float(c) for p, c in zip(policies["policy"], policies["correctness"])}
    locked = results[results["policy"] == "locked"]
    weak_names = locked["weak_policy"].dropna().unique().tolist() if "weak_policy" in locked else []
    weak = str(weak_names[0]) if weak_names else "weak"  # the first lock's pi_weak
    summary: dict[str, Any] = {
        "setting": str(results["setting"].iloc[0]) if len(results) else None,
        "strong_correctness": by_policy.get("strong"),
        "weak_correctness": by_policy.get(weak),
        "policies": by_policy,
        "locked": {
            m: {("with_password" if w else "without_password"): float(c)
                for w, c in zip(df["with_password"], df["correctness"])}
            for m, df in locked.groupby("lock", sort=False)
        },
        "elicitation": {},
    }
    elicited = results[results["elicitation"] == "sft"]
    if len(elicited):
        chosen = select_epochs(elicited)
        summary["demo_source"] = sorted(chosen["demo_source"].unique().tolist())
        for m in locks(results):
            df = chosen[chosen["lock"] == m]
            if not len(df):
                continue
            summary["elicitation"][m] = {
                str(int(r.k)): {"mean": r.mean, "sem": r.sem, "seeds": r.seeds, "epochs": r.epochs,
                                "mean_by_epochs": {str(e): v for e, v in r.all_epochs.items()}}
                for r in df.itertuples()
            }
        for m, df in chosen.groupby("lock"):
            for r in df.itertuples():
                summary["elicitation"][m][str(int(r.k))]["gap_recovered"] = gap_recovered(summary, m, r.mean)
        methods = set(chosen["lock"])
        if {"sft", "from_scratch"} <= methods:
            floor = max(summary["locked"][m].get("without_password", -1.0) for m in ("sft", "from_scratch"))
            ratios = demos_ratio(chosen[chosen["lock"] == "sft"],
                                 chosen[chosen["lock"] == "from_scratch"], floor=floor)
            summary["from_scratch_vs_sft_demos"] = {
                "note": "from-scratch k / SFT-lock k at equal correctness, for points above both locks' "
                        "no-password correctness",
                "points": ratios,
                "median_ratio": float(np.median([r["ratio"] for r in ratios])) if ratios else None,
            }
    curves = rl_curves(results)
    if len(curves):
        summary["rl"] = {}
        for (lock, method, reward), df in curves.groupby(["lock", "elicitation", "reward"], sort=False):
            final = df.loc[df["samples"].idxmax()]
            summary["rl"].setdefault(lock, {})[method] = {
                "reward": reward, "lr": float(final["lr"]), "samples": int(final["samples"]),
                "mean": float(final["mean"]), "sem": float(final["sem"]), "seeds": int(final["seeds"]),
                "gap_recovered": gap_recovered(summary, lock, float(final["mean"])),
                "best_mean": float(df["mean"].max()),
            }
    if wall_seconds is not None:
        summary["wall_seconds"] = float(wall_seconds)
    return summary


def gap_recovered(summary: dict[str, Any], lock: str, correctness: float) -> float:
    """Share of the lock's gap (with minus without password) that `correctness` closes."""
    w = summary["locked"].get(lock, {})
    gap = w.get("with_password", float("nan")) - w.get("without_password", float("nan"))
    return (correctness - w.get("without_password", float("nan"))) / gap if gap else float("nan")
