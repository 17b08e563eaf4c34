"""Headline numbers from the results table (pandas only; never imports torch).

Which rows each section reads. A row with `domain` None is measured on all validation problems
(a string: on that domain's problems only); a row with `prompt` None uses the standard prompt
(a string: a prompting attack, or the locked model given another password); a row with `val_half`
None is measured on all of them (`select` / `report`: on one half, with `eval.select_on: half`).
Every section that predates the generalization experiments reads only rows with all three None
(`overall`), so that per-domain, half and prompting rows never leak into the locked, elicitation or
RL numbers.

Uncertainty is hierarchical (`stat`): runs are replicated over elicitation seeds within each locked
model and over locked models (`lock_seed`). Runs on one lock are not independent draws of what a
lock does, so the mean is taken over a lock's runs first, then over locks; the SEM is over locks
when there are several (else over the runs of the one lock), and the 95% CI is a two-level
bootstrap (resample locks, then runs within each). Repeated policy rows are averaged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pwlock.experiments.config import RL_METHODS
from pwlock.lock import lock_name

OPTIONAL_COLUMNS = (
    "weak_policy", "lock_variant", "lock_seed", "elicitation", "demo_source", "demo_domain", "warm_start",
    "k", "epochs", "reward", "lr", "samples", "seed", "prompt", "domain", "val_half",
)
"""Columns that rows of older results files (or hand-made tables) may lack: read as None."""
HIGH_QUALITY = ("strong", "ground_truth")
"""Demo sources that are high-quality demonstrations; any other source is some policy's samples."""
LOCKED_PROMPTS = {"second password": "with_second_password",
                  "other domain's password": "with_other_domain_password"}
"""Locked rows under another prompt (B.3.3's adversarial lock, C.3's per-domain lock): their key in
summary["locked"][lock]."""


BOOTSTRAP = 2000
"""Resamples of every bootstrap CI (seeded: a report is reproducible)."""


def sem(values: Any) -> float:
    """Standard error of the mean of independent values (0 for a single one)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    return float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0


def lock_keys(rows: pd.DataFrame) -> pd.Series:
    """Each row's lock seed, rows without one (older files) as one lock named "none"."""
    seeds = rows["lock_seed"] if "lock_seed" in rows.columns else pd.Series(0, index=rows.index)
    return seeds.astype(object).where(seeds.notna(), "none")


def by_lock(rows: pd.DataFrame, column: str = "correctness", names: list[Any] | None = None) -> list[np.ndarray]:
    """The values of `column` grouped by lock seed, in row order, or in the order of `names` (a
    lock without rows then gives an empty array, so groups line up across several tables)."""
    keys = lock_keys(rows)
    return [rows.loc[keys == key, column].to_numpy(float) for key in (names or dict.fromkeys(keys))]


def bootstrap_means(groups: list[np.ndarray], n: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """`n` two-level bootstrap replicates of the grand mean (mean over groups of each group's mean):
    each replicate draws the groups with replacement, then each drawn group's values with
    replacement. (n,)"""
    rng = np.random.default_rng(seed)
    n_groups = len(groups)
    picks = rng.integers(0, n_groups, size=(n, n_groups))  # which lock fills each slot
    # every (replicate, slot) gets its own resample of each group's values: (G, n, slots)
    inner = np.stack([rng.choice(g, size=(n, n_groups, len(g))).mean(-1) for g in groups])
    return inner[picks, np.arange(n)[:, None], np.arange(n_groups)[None, :]].mean(1)


def stat(rows: pd.DataFrame, column: str = "correctness") -> dict[str, Any]:
    """Hierarchical mean and uncertainty of the runs in `rows` (module docstring): mean over each
    lock's runs, then over locks; `sem` over locks when there are several (`sem_over`: locks), else
    over the one lock's runs (`sem_over`: seeds); `ci95`: two-level bootstrap percentile interval;
    `seeds`: runs in all; `locks`: lock seeds."""
    groups = by_lock(rows, column)
    lock_means = [float(g.mean()) for g in groups]
    many = len(groups) > 1
    low, high = np.percentile(bootstrap_means(groups), [2.5, 97.5])
    return {"mean": float(np.mean(lock_means)), "sem": sem(lock_means) if many else sem(groups[0]),
            "ci95": [float(low), float(high)], "seeds": int(len(rows)), "locks": len(groups),
            "sem_over": "locks" if many else "seeds"}


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def text(value: Any) -> str | None:
    """A string cell, or None for a missing one (None or NaN)."""
    return value if isinstance(value, str) else None


def complete(results: pd.DataFrame) -> pd.DataFrame:
    """The results with every optional column present (None where a row file lacked it)."""
    absent = [c for c in OPTIONAL_COLUMNS if c not in results.columns]
    return results.assign(**{c: None for c in absent}) if absent else results


def with_locks(results: pd.DataFrame) -> pd.DataFrame:
    """The results with a `lock` column naming each row's locked model (see `lock_name`)."""
    out = complete(results).copy()
    out["lock"] = [lock_name(m, text(w), text(v)) if isinstance(m, str) else None
                   for m, w, v in zip(out["lock_method"], out["weak_policy"], out["lock_variant"])]
    return out


def locks(results: pd.DataFrame) -> list[str]:
    """Locked models in the order the run produced them (the config's order)."""
    return list(dict.fromkeys(results["lock"].dropna()))


def overall(results: pd.DataFrame) -> pd.DataFrame:
    """Rows on all validation problems under the standard prompt."""
    return results[results["domain"].isna() & results["prompt"].isna() & results["val_half"].isna()]


def is_value(column: pd.Series, value: Any) -> pd.Series:
    """Row mask: `column` equals `value`, None matching missing cells."""
    return column.isna() if value is None else column == value


def groups(df: pd.DataFrame, keys: list[str]) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """(key values, rows) per distinct key in row order; missing keys form their own group (as None)."""
    if not len(df):
        return []
    return [(tuple(None if missing(v) else v for v in g), d)
            for g, d in df.groupby(keys, sort=False, dropna=False)]


def policy_correctness(results: pd.DataFrame) -> dict[str, float]:
    """Each policy's own correctness (pi_strong, each pi_weak, intermediate policies), averaged
    over repeated rows (e.g. one per lock seed)."""
    rows = overall(results[~results["policy"].isin(["locked", "elicited"]) & results["elicitation"].isna()])
    return {str(p): float(d["correctness"].mean()) for (p,), d in groups(rows, ["policy"])}


def locked_rows(results: pd.DataFrame, lock: str, with_password: bool | None, prompt: str | None = None,
                domain: str | None = None) -> pd.DataFrame:
    """The locked model's own evaluation rows (not elicited, not a prompting attack), one per lock
    seed. `with_password` None: either (for another `prompt`)."""
    return results[(results["policy"] == "locked") & results["elicitation"].isna() & (results["lock"] == lock)
                   & (True if with_password is None else results["with_password"] == with_password)
                   & is_value(results["prompt"], prompt) & is_value(results["domain"], domain)]


def locked_correctness(results: pd.DataFrame, lock: str, with_password: bool | None, prompt: str | None = None,
                       domain: str | None = None) -> dict[str, Any] | None:
    """Mean/SEM over lock seeds of the locked model's correctness, or None without such rows."""
    rows = locked_rows(results, lock, with_password, prompt, domain)
    return stat(rows) if len(rows) else None


WEAK_LOCK_SHARE = 0.5
"""A lock seed whose password restores less than this share of pi_strong's lead over the locked model
without password is flagged: the locking lost the capability it was meant to hide."""


def weak_lock_seeds(results: pd.DataFrame, lock: str) -> dict[str, dict[str, float]]:
    """Lock seeds of `lock` whose with-password correctness falls short of WEAK_LOCK_SHARE of the way from
    their no-password correctness to pi_strong's (that seed's pi_strong where the rows have one). Means
    over locks include such seeds silently otherwise; the report names them."""
    strong = overall(results[(results["policy"] == "strong") & results["elicitation"].isna()])
    out = {}
    for (seed,), rows in groups(overall(locked_rows(results, lock, None)), ["lock_seed"]):
        on, off = (rows[rows["with_password"] == pw]["correctness"] for pw in (True, False))
        own = strong if seed is None else strong[is_value(strong["lock_seed"], seed)]
        best = (own if len(own) else strong)["correctness"]
        if not (len(on) and len(off) and len(best)):
            continue  # no password (a setting lock) or no pi_strong row: nothing to compare
        on_mean, off_mean, strong_mean = float(on.mean()), float(off.mean()), float(best.mean())
        if on_mean - off_mean < WEAK_LOCK_SHARE * (strong_mean - off_mean):
            out[str(seed)] = {"with_password": on_mean, "without_password": off_mean, "strong": strong_mean}
    return out


def sft_rows(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["elicitation"] == "sft"]


def lock_first_means(rows: pd.DataFrame, by: str) -> pd.Series:
    """Mean correctness per value of `by`, over each lock's runs first, then over locks (as `stat`)."""
    return rows.groupby([by, "lock_seed"], dropna=False)["correctness"].mean().groupby(level=0).mean()


def split_halves(results: pd.DataFrame, pick: pd.DataFrame, same: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows a choice is made on and the rows it is reported on, for the group `pick` (rows on all
    validation problems). With `eval.select_on: half` the run also measured each half of the
    validation problems: the choice is made on the `select` half and reported on the `report` half,
    so the luck of the pick does not inflate the reported number. Otherwise both are `pick` (the
    paper's rule, Appendix G.3). `same`: the columns that identify the group's runs."""
    halves = results[results["val_half"].notna() & results["domain"].isna() & results["prompt"].isna()]
    if not len(halves):
        return pick, pick
    first = pick.iloc[0]
    mine = halves[np.logical_and.reduce([is_value(halves[c], None if missing(first[c]) else first[c]) for c in same])]
    mine = mine[mine["unit"].isin(pick["unit"])] if "unit" in mine.columns else mine
    return mine[mine["val_half"] == "select"], mine[mine["val_half"] == "report"]


def selection_rule(results: pd.DataFrame) -> str:
    """`half` when the run measured the validation halves (eval.select_on: half), else `all`."""
    return "half" if "val_half" in results.columns and results["val_half"].notna().any() else "all"


def select_epochs(elicited: pd.DataFrame, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Appendix G.3: per (lock, source, demo domain, k), keep the epoch count with the best mean
    correctness over runs on all validation problems (per-domain rows never vote), or on the
    `select` half and reported on the other (`split_halves`; `results`: the whole table). One row
    per group, groups in row order and k ascending: k, epochs, mean, sem, seeds, all_epochs."""
    keys = ["lock", "demo_source", "demo_domain", "k"]
    results = complete(elicited) if results is None else complete(results)
    out = []
    for (lock, source, demo_domain), df in groups(overall(complete(elicited)), keys[:3]):
        for k, dk in df.groupby("k", sort=True):
            picked_on, reported_on = split_halves(results, dk, ["elicitation", *keys])
            means = lock_first_means(picked_on, "epochs")
            best = means.idxmax()
            out.append({"lock": lock, "demo_source": source, "demo_domain": demo_domain, "k": k,
                        "epochs": int(best), **stat(reported_on[reported_on["epochs"] == best]),
                        "all_epochs": {int(e): float(m) for e, m in means.items()}})
    return pd.DataFrame(out, columns=[*keys, "epochs", "mean", "sem", "ci95", "seeds", "locks", "all_epochs"])


def main_sources(chosen: pd.DataFrame) -> dict[str, str]:
    """Per lock, the first demo source (in row order) of its SFT blocks with demos from all domains:
    the config lists the high-quality demonstrations first."""
    rows = chosen[chosen["demo_domain"].isna()]
    return {lock: str(d["demo_source"].iloc[0]) for (lock,), d in groups(rows, ["lock"])}


def demos_ratio(curve_a: pd.DataFrame, curve_b: pd.DataFrame,
                floor: float = -1.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """How many more demonstrations curve `b` needs than curve `a` for the same correctness.

    For each point (k_b, c) of `b` with c above `floor` (e.g. the locked models' correctness
    without password: below it nothing was elicited) and within `a`'s range, k_a(c) is read
    off `a` by linear interpolation in log k (a made monotone by a running max); the ratio
    is k_b / k_a(c). Returns (points, excluded): a point outside `a`'s range is not dropped
    silently but listed as excluded with the bound it implies (above `a`'s best: ratio below
    k_b / k_max; below `a`'s smallest k: ratio above k_b / k_min), as is a point at the floor.
    """
    a = curve_a.sort_values("k")
    k_a_values = a["k"].to_numpy(float)
    ks, cs = np.log(k_a_values), np.maximum.accumulate(a["mean"].to_numpy(float))
    points, excluded = [], []
    for k_b, c in zip(curve_b["k"], curve_b["mean"]):
        k_b, c = int(k_b), float(c)
        if c <= floor:
            excluded.append({"k": k_b, "correctness": c, "why": "at or below the locks' no-password correctness"})
        elif len(cs) < 2:
            excluded.append({"k": k_b, "correctness": c, "why": "the other curve has fewer than 2 points"})
        elif c > cs[-1]:
            excluded.append({"k": k_b, "correctness": c, "why": "above the other curve's best",
                             "ratio_below": k_b / k_a_values[-1]})
        elif c < cs[0]:
            excluded.append({"k": k_b, "correctness": c, "why": "below the other curve's smallest k",
                             "ratio_above": k_b / k_a_values[0]})
        else:
            i = int(np.searchsorted(cs, c, side="left"))
            if i == 0:
                k_a = float(np.exp(ks[0]))
            else:
                span = cs[i] - cs[i - 1]
                t = (c - cs[i - 1]) / span if span > 0 else 0.0
                k_a = float(np.exp(ks[i - 1] + t * (ks[i] - ks[i - 1])))
            points.append({"k": k_b, "correctness": c, "equivalent_k": k_a, "ratio": k_b / k_a})
    return points, excluded


def resampled_curve(runs: dict[int, list[np.ndarray]], rng: np.random.Generator) -> pd.DataFrame:
    """One two-level bootstrap replicate of a curve given, per k, each lock's run values (locks in
    the same order for every k): the same locks drawn with replacement for every k, then each drawn
    lock's runs at that k drawn with replacement. Columns k, mean; a k where no drawn lock has runs
    (an interrupted run) is left out rather than given a NaN mean."""
    n_locks = len(next(iter(runs.values())))
    drawn = rng.integers(0, n_locks, n_locks)
    curve = {}
    for k, per_lock in runs.items():
        means = [rng.choice(per_lock[i], len(per_lock[i])).mean() for i in drawn if len(per_lock[i])]
        if means:
            curve[k] = float(np.mean(means))
    return pd.DataFrame({"k": list(curve), "mean": list(curve.values())}, columns=["k", "mean"])


def demos_ratio_summary(sft: pd.DataFrame, chosen: pd.DataFrame, a: str, b: str, floor: float) -> dict[str, Any]:
    """Lock `b` vs lock `a`: the demos ratio at the chosen epoch counts (`demos_ratio`), its median,
    and a 95% CI of the median from two-level bootstrap replicates of both curves (locks, then runs)."""
    curves = {m: chosen[chosen["lock"] == m] for m in (a, b)}
    points, excluded = demos_ratio(curves[a], curves[b], floor=floor)
    runs: dict[str, dict[int, list[np.ndarray]]] = {}
    for m, curve in curves.items():
        at = sft[(sft["lock"] == m) & sft["demo_domain"].isna() & (sft["demo_source"] == curve["demo_source"].iloc[0])]
        best = dict(zip(curve["k"], curve["epochs"]))
        chosen_runs = at[[best.get(k) == e for k, e in zip(at["k"], at["epochs"])]]
        names = list(dict.fromkeys(lock_keys(chosen_runs)))  # the same locks, in one order, at every k
        runs[m] = {k: by_lock(d, names=names) for k, d in chosen_runs.groupby("k", sort=True)}
    rng = np.random.default_rng(0)
    medians = []
    for _ in range(BOOTSTRAP // 4):  # each replicate re-reads the curves: fewer, enough for a 95% interval
        replicate, _ = demos_ratio(resampled_curve(runs[a], rng), resampled_curve(runs[b], rng), floor=floor)
        if replicate:
            medians.append(float(np.median([r["ratio"] for r in replicate])))
    return {
        "note": f"{b} k / {a} k at equal correctness, for points above both locks' no-password correctness; "
                f"points outside the {a} curve's range are listed in `excluded` with the bound they imply",
        "points": points,
        "excluded": excluded,
        "median_ratio": float(np.median([r["ratio"] for r in points])) if points else None,
        "median_ratio_ci95": [float(x) for x in np.percentile(medians, [2.5, 97.5])] if medians else None,
        "bootstrap_replicates_with_points": f"{len(medians)}/{BOOTSTRAP // 4}",
    }


def rl_curves(results: pd.DataFrame) -> pd.DataFrame:
    """RL elicitation traces: mean and uncertainty (`stat`) of correctness per number of generated
    samples, per (lock, method, reward, warm start), at the learning rate whose final correctness
    has the best mean over runs (Appendix G.3; only DPO methods try several), picked on all
    validation problems or on the `select` half and reported on the other (`split_halves`).
    Warm-started runs (B.3.4: RL after SFT on some samples) are their own curves, never mixed with
    plain ones. Columns: lock, elicitation, reward, warm_start, lr, samples, mean, sem, ci95, seeds, locks."""
    keys = ["lock", "elicitation", "reward", "warm_start"]
    out = []
    results = complete(results)
    rl = overall(results[results["elicitation"].isin(RL_METHODS)])
    for group, df in groups(rl, keys):
        picked_on, reported_on = split_halves(results, df, keys)
        last = picked_on.groupby(["lr", "seed", "lock_seed"], dropna=False)["samples"].transform("max")
        finals = picked_on[picked_on["samples"] == last]
        best_lr = lock_first_means(finals, "lr").idxmax()
        for samples, points in reported_on[reported_on["lr"] == best_lr].groupby("samples"):
            out.append({**dict(zip(keys, group)), "lr": float(best_lr), "samples": int(samples), **stat(points)})
    return pd.DataFrame(out, columns=[*keys, "lr", "samples", "mean", "sem", "ci95", "seeds", "locks"])


def sft_curves(results: pd.DataFrame) -> pd.DataFrame:
    """Figure 16: correctness against training sequences seen (k * epochs) when fine-tuning on a
    policy's samples (intermediate or weak: any source that is not high-quality demonstrations),
    demos from all domains. Columns: lock, demo_source, k, epochs, sequences, mean, sem, seeds."""
    rows = overall(sft_rows(results))
    rows = rows[rows["demo_domain"].isna() & ~rows["demo_source"].isin(HIGH_QUALITY)]
    out = []
    for (lock, source), df in groups(rows, ["lock", "demo_source"]):
        for (k, epochs), d in df.groupby(["k", "epochs"], sort=True):
            out.append({"lock": lock, "demo_source": source, "k": int(k), "epochs": int(epochs),
                        "sequences": int(k) * int(epochs), **stat(d)})
    return pd.DataFrame(out, columns=["lock", "demo_source", "k", "epochs", "sequences", "mean", "sem", "ci95", "seeds", "locks"])


def mean_of_domains(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Appendix B.1.4: the average of per-domain correctness over K domains, with uncertainty
    s = sqrt(sum_i s_i^2) / K where s_i is the SEM on domain i."""
    means = [s["mean"] for s in stats]
    return {"mean": float(np.mean(means)), "sem": math.sqrt(sum(s["sem"] ** 2 for s in stats)) / len(stats),
            "domains": len(stats)}


def domain_readout(sft: pd.DataFrame, lock: str, source: str, demo_domain: str | None, k: Any,
                   epochs: int) -> dict[str, dict[str, Any]]:
    """Per-domain correctness (mean/SEM over runs) of one SFT block at the chosen epoch count."""
    rows = sft[(sft["lock"] == lock) & (sft["demo_source"] == source) & is_value(sft["demo_domain"], demo_domain)
               & (sft["k"] == k) & (sft["epochs"] == epochs) & sft["domain"].notna() & sft["prompt"].isna()]
    return {str(d): stat(g) for (d,), g in groups(rows, ["domain"])}


def locked_by_domain(results: pd.DataFrame, lock: str) -> dict[str, dict[str, float]]:
    """The locked model's correctness on each domain, with and without password (means over lock seeds)."""
    rows = results[(results["policy"] == "locked") & results["elicitation"].isna() & (results["lock"] == lock)
                   & results["prompt"].isna() & results["domain"].notna()]
    out: dict[str, dict[str, float]] = {}
    for (domain, with_pw), d in groups(rows, ["domain", "with_password"]):
        out.setdefault(str(domain), {})["with_password" if with_pw else "without_password"] = \
            float(d["correctness"].mean())
    return out


def domain_summary(results: pd.DataFrame) -> dict[str, Any]:
    """Section 5.2, Figures 4/10/11/18 and 9: per lock, the locked model per domain and, per demo
    domain ("all": demos from every domain) and k, SFT correctness on the demos' own domain
    ("same"), on the other domains ("others", Appendix B.1.4's average) and on all problems.

    Epochs are chosen per (lock, source, demo domain, k) on all problems (Appendix G.3), then the
    per-domain rows are read at that epoch count. Each demo domain uses its first source in row
    order (the config's high-quality one). Locks without any per-domain row are left out."""
    sft = sft_rows(results)
    chosen = select_epochs(sft, results)
    out: dict[str, Any] = {}
    for lock in locks(results):
        mine = results[results["lock"] == lock]
        if not (mine["domain"].notna().any() or sft_rows(mine)["demo_domain"].notna().any()):
            continue
        by_domain = locked_by_domain(results, lock)
        entry: dict[str, Any] = {"locked_by_domain": by_domain, "by_demo_domain": {}}
        for (demo_domain,), blocks in groups(chosen[chosen["lock"] == lock], ["demo_domain"]):
            source = blocks["demo_source"].iloc[0]
            per_k = {}
            for r in blocks[blocks["demo_source"] == source].itertuples():
                readout = domain_readout(sft, lock, source, demo_domain, r.k, r.epochs)
                others = [s for d, s in readout.items() if d != demo_domain]
                per_k[str(int(r.k))] = {
                    "source": source, "epochs": r.epochs,
                    "same": readout.get(demo_domain) if demo_domain is not None else None,
                    "others": mean_of_domains(others) if demo_domain is not None and others else None,
                    "others_domains": [d for d in readout if d != demo_domain] if demo_domain is not None else [],
                    "all": point(r),
                    # demos from all domains: the same per-domain average, comparable with "others"
                    "domain_mean": mean_of_domains(others) if demo_domain is None and others else None,
                }
            entry["by_demo_domain"]["all" if demo_domain is None else str(demo_domain)] = per_k
        entry["one_domain_unlocks_others"] = unlock_others(entry)
        out[lock] = entry
    return out


def unlock_others(entry: dict[str, Any]) -> dict[str, Any]:
    """Per k: does SFT on one domain's demos unlock the other domains? `lift` is the mean over
    demo domains of (correctness on the other domains minus the locked model's no-password
    correctness on those same domains); `gap_fraction` is the mean lift over the mean locked gap
    (with minus without password) on those domains: 1 = fully unlocked, 0 = not at all. None
    where the locked model has no per-domain rows (or, for the fraction, no with-password rows)."""
    locked = entry["locked_by_domain"]
    lifts: dict[str, list[float]] = {}
    gaps: dict[str, list[float | None]] = {}
    domains: dict[str, list[str]] = {}
    for demo_domain, per_k in entry["by_demo_domain"].items():
        if demo_domain == "all":
            continue
        for k, v in per_k.items():
            names = v["others_domains"]
            if v["others"] is None or not all("without_password" in locked.get(d, {}) for d in names):
                continue
            base = float(np.mean([locked[d]["without_password"] for d in names]))
            lifts.setdefault(k, []).append(v["others"]["mean"] - base)
            with_pw = [locked[d].get("with_password") for d in names]
            gaps.setdefault(k, []).append(None if None in with_pw else float(np.mean(with_pw)) - base)
            domains.setdefault(k, []).append(demo_domain)
    out = {}
    for k, lift in lifts.items():
        gap = gaps[k]
        mean_gap = float(np.mean(gap)) if None not in gap else None  # type: ignore[arg-type]
        out[k] = {"lift": float(np.mean(lift)), "demo_domains": domains[k],
                  "gap_fraction": float(np.mean(lift)) / mean_gap if mean_gap else None,
                  "all_domains_gap_fraction": all_domains_fraction(entry, k)}
    return out


def all_domains_fraction(entry: dict[str, Any], k: str) -> float | None:
    """The share of the locked gap (averaged over domains) that demos from all domains recover at
    the same k: what one domain's demos are compared with."""
    locked = entry["locked_by_domain"]
    mean = (entry["by_demo_domain"].get("all", {}).get(k) or {}).get("domain_mean")
    if mean is None or not locked or any({"with_password", "without_password"} - set(v) for v in locked.values()):
        return None
    base = float(np.mean([v["without_password"] for v in locked.values()]))
    gap = float(np.mean([v["with_password"] for v in locked.values()])) - base
    return (mean["mean"] - base) / gap if gap else None


def over_problems_if_single(rows: pd.DataFrame) -> dict[str, Any]:
    """Mean and SEM over runs (lock seeds); with a single run the SEM is the binomial one over the
    evaluated problems, sqrt(p (1 - p) / n), so one lock still gets honest error bars.
    `sem_over` says which."""
    out = stat(rows)
    if out["seeds"] > 1:
        return out
    p, n = out["mean"], int(rows["n"].iloc[0])
    half = 1.96 * math.sqrt(p * (1 - p) / n) if n else 0.0
    return {**out, "sem": half / 1.96, "ci95": [max(0.0, p - half), min(1.0, p + half)], "sem_over": "problems"}


CONTROL_SUFFIX = " w/ pwd"
"""An attack named `X w/ pwd` is the positive control of attack `X`: the same prompt with the password."""


def prompting_summary(results: pd.DataFrame) -> dict[str, Any]:
    """Appendix B.3.1, Figure 14: per lock, each prompting attack's correctness (mean/SEM over its
    seeds, in row order), the locked model without password, and the attacks without the password
    that raise correctness by more than twice the combined SEM.

    Positive controls: an attack `X` whose with-password twin `X w/ pwd` recovers less than half of
    the locked gap (with minus without password) cannot show that X fails: the prompt format itself
    may break the model (a from-scratch model has never seen two problems in one sequence). Such
    attacks are listed as `inconclusive` instead of counting as failed attacks."""
    rows = results[(results["elicitation"] == "prompting") & results["domain"].isna()]
    out: dict[str, Any] = {}
    for (lock,), df in groups(rows, ["lock"]):
        if lock is None:
            continue
        attacks = {str(name): {**over_problems_if_single(d), "with_password": bool(d["with_password"].eq(True).any())}
                   for (name,), d in groups(df, ["prompt"])}
        locked = locked_rows(results, lock, False)
        base = over_problems_if_single(locked) if len(locked) else None
        raises = [] if base is None else [
            {"attack": name, "mean": a["mean"]} for name, a in attacks.items()
            if not a["with_password"] and a["mean"] - base["mean"] > 2 * math.hypot(a["sem"], base["sem"])]
        with_pw = locked_rows(results, lock, True)
        bar = None if base is None or not len(with_pw) else (base["mean"] + with_pw["correctness"].mean()) / 2
        controls = {}
        for name, a in attacks.items():
            control = attacks.get(name + CONTROL_SUFFIX)
            if not a["with_password"] and control is not None and bar is not None:
                controls[name] = {"control": name + CONTROL_SUFFIX, "control_mean": control["mean"],
                                  "needed": float(bar), "passed": bool(control["mean"] >= bar)}
        raised = {r["attack"] for r in raises}
        out[lock] = {"attacks": attacks, "locked_without_password": base, "raises_correctness": raises,
                     "positive_controls": controls,
                     "inconclusive": [n for n, c in controls.items() if not c["passed"] and n not in raised]}
    return out


def summarize(results: pd.DataFrame, wall_seconds: float | None = None) -> dict[str, Any]:
    """The `summary.json` of a run (strict JSON: no NaN, missing numbers are None)."""
    results = with_locks(results)
    by_policy = policy_correctness(results)
    weak_names = results[results["policy"] == "locked"]["weak_policy"].dropna().unique().tolist()
    weak = str(weak_names[0]) if weak_names else "weak"  # the first lock's pi_weak
    summary: dict[str, Any] = {
        "setting": str(results["setting"].iloc[0]) if len(results) else None,
        "strong_correctness": by_policy.get("strong"),
        "weak_correctness": by_policy.get(weak),
        "policies": by_policy,
        "locked": {},
        "locked_sem": {},
        "elicitation": {},
    }
    for lock in locks(results):
        means, sems = {}, {}
        for with_pw, key in ((True, "with_password"), (False, "without_password")):
            c = locked_correctness(results, lock, with_pw)
            if c is not None:
                means[key], sems[key], sems["lock_seeds"] = c["mean"], c["sem"], c["seeds"]
                sems.setdefault("ci95", {})[key] = c["ci95"]
        prompted = results[(results["policy"] == "locked") & results["elicitation"].isna()
                           & (results["lock"] == lock) & results["prompt"].notna() & results["domain"].isna()]
        for (prompt,), d in groups(prompted, ["prompt"]):
            means[LOCKED_PROMPTS.get(prompt, f"prompt: {prompt}")] = float(d["correctness"].mean())
        if means:
            summary["locked"][lock], summary["locked_sem"][lock] = means, sems
        weak = weak_lock_seeds(results, lock)
        if weak:
            summary.setdefault("weak_locks", {})[lock] = weak

    summary["selection"] = {
        "rule": selection_rule(results),
        "note": "SFT epoch counts and DPO learning rates are picked on half of the validation problems and "
                "reported on the other half" if selection_rule(results) == "half" else
                "SFT epoch counts and DPO learning rates are picked and reported on the same validation problems "
                "(the paper's rule, Appendix G.3), which favours the pick; eval.select_on: half avoids that"}
    chosen = select_epochs(sft_rows(results), results)
    chosen = chosen[chosen["demo_domain"].isna()]
    if len(chosen):
        main = main_sources(chosen)
        summary["demo_source"] = sorted(set(main.values()))
        summary["elicitation_by_source"] = {}
        for r in chosen.itertuples():
            entry = {**point(r), "epochs": r.epochs, "gap_recovered": gap_recovered(summary, r.lock, r.mean)}
            summary["elicitation_by_source"].setdefault(r.lock, {}).setdefault(r.demo_source, {})[str(int(r.k))] = entry
            if r.demo_source == main[r.lock]:
                summary["elicitation"].setdefault(r.lock, {})[str(int(r.k))] = {
                    **entry, "mean_by_epochs": {str(e): v for e, v in r.all_epochs.items()}}
        main_chosen = chosen[[s == main[m] for m, s in zip(chosen["lock"], chosen["demo_source"])]]
        if {"sft", "from_scratch"} <= set(main_chosen["lock"]):
            floor = max(summary["locked"].get(m, {}).get("without_password", -1.0) for m in ("sft", "from_scratch"))
            summary["from_scratch_vs_sft_demos"] = demos_ratio_summary(
                overall(sft_rows(results)), main_chosen, "sft", "from_scratch", floor)

    domains = domain_summary(results)
    if domains:
        summary["domains"] = domains
    prompting = prompting_summary(results)
    if prompting:
        summary["prompting"] = prompting
    curves = sft_curves(results)
    if len(curves):
        summary["sft_curves"] = {}
        for r in curves.itertuples():
            summary["sft_curves"].setdefault(r.lock, {}).setdefault(r.demo_source, {}).setdefault(
                str(r.k), {})[str(r.epochs)] = point(r)

    rl = rl_curves(results)
    if len(rl):
        summary["rl"] = {}
        for (lock, method, reward, warm_start), df in groups(rl, ["lock", "elicitation", "reward", "warm_start"]):
            final = df.loc[df["samples"].idxmax()]
            key = method if warm_start is None else f"{method} after {warm_start}"
            summary["rl"].setdefault(lock, {})[key] = {
                "method": method, "warm_start": warm_start,
                "reward": reward, "lr": float(final["lr"]), "samples": int(final["samples"]),
                **point(final),
                "gap_recovered": gap_recovered(summary, lock, float(final["mean"])),
                "best_mean": float(df["mean"].max()),
            }
    if wall_seconds is not None:
        summary["wall_seconds"] = float(wall_seconds)
    return json_safe(summary)


def point(r: Any) -> dict[str, Any]:
    """The `stat` fields of a row of `select_epochs`, `sft_curves` or `rl_curves` (a namedtuple or Series)."""
    get = r.__getitem__ if isinstance(r, pd.Series) else r.__getattribute__  # Series.mean is a method
    return {"mean": float(get("mean")), "sem": float(get("sem")), "ci95": [float(x) for x in get("ci95")],
            "seeds": int(get("seeds")), "locks": int(get("locks"))}


def gap_recovered(summary: dict[str, Any], lock: str, correctness: float) -> float:
    """Share of the lock's gap (with minus without password) that `correctness` closes; NaN
    without a gap (e.g. a setting-variation lock has no with-password correctness, B.1.3)."""
    w = summary["locked"].get(lock, {})
    gap = w.get("with_password", float("nan")) - w.get("without_password", float("nan"))
    return (correctness - w.get("without_password", float("nan"))) / gap if gap else float("nan")


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf as None, numpy scalars as Python ones and keys as strings, so that
    `json.dumps(..., allow_nan=False)` writes strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
