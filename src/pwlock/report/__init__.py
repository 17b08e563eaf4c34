"""Reports: summary.json, figures and a markdown page, from a run's stored results only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pwlock.errors import DataError, NotARunError
from pwlock.io import RESULTS, RUN_MARKER, SUMMARY, read_json, read_jsonl, write_atomic
from pwlock.report.figures import (
    figure_domain_generalization,
    figure_prompting,
    figure_rl_elicitation,
    figure_sft_curves,
    figure_sft_elicitation,
)
from pwlock.report.summary import WEAK_LOCK_SHARE, summarize, with_locks

FIGURES = {"sft_elicitation": figure_sft_elicitation, "domain_generalization": figure_domain_generalization,
           "prompting": figure_prompting, "sft_curves": figure_sft_curves, "rl_elicitation": figure_rl_elicitation}
"""Each figure's file stem and how it is drawn (None, and no file, without its rows)."""


__all__ = ["NotARunError", "load_results", "write_report"]

REQUIRED = ("policy", "with_password", "correctness")
"""Columns every results row has (older runs lack some later ones, which mean None)."""
VALUES = ("correctness", "n", "unit")
"""What a measurement found; every other column says what was measured."""
NAMING = ("lock_seed", "lock_variant", "demo_domain", "domain", "prompt", "samples", "warm_start")
"""Columns added over time that tell measurements apart: with them all, two rows alike but for their
values contradict each other."""


def load_results(run_dir: Path) -> pd.DataFrame:
    """The results table of a run dir, one row per measurement.

    A malformed file is an error naming its line. Repeated rows (the same measurement twice) are
    dropped, with a note on stderr; two rows that measure the same thing with different results
    are an error naming their lines (in a file with every column: NAMING)."""
    if not run_dir.is_dir():
        raise NotARunError(f"run dir not found: {run_dir}")
    if not (run_dir / RUN_MARKER).is_file():
        raise NotARunError(f"{run_dir} is not a pwlock run dir (no {RUN_MARKER})")
    path = run_dir / RESULTS
    if not path.is_file():
        raise NotARunError(f"{run_dir} has no {RESULTS} yet: the run has not finished once")
    try:
        rows = read_jsonl(path)
    except DataError as e:
        raise NotARunError(f"{e} (re-run the config to rewrite it from the cache)") from None
    if not rows:
        raise NotARunError(f"{path} holds no rows (re-run the config to rewrite it from the cache)")
    for i, r in enumerate(rows, 1):
        missing = [c for c in REQUIRED if c not in r]
        c = r.get("correctness")
        if missing or not isinstance(c, int | float) or isinstance(c, bool) or not 0 <= c <= 1:
            what = f"lacks {missing}" if missing else f"correctness {c!r} is not a number in [0, 1]"
            raise NotARunError(f"{path}: row {i}: {what}")
    df = pd.read_json(path, lines=True, dtype=False, precise_float=True)
    repeated = df.duplicated(keep="first")
    if repeated.any():
        print(f"[pwlock] {path}: {int(repeated.sum())} repeated rows (lines "
              f"{', '.join(str(i + 1) for i in df.index[repeated][:10])}) dropped: each measurement counts once",
              file=sys.stderr)
        df = df[~repeated]
    keys = [c for c in df.columns if c not in VALUES]
    clash = df.duplicated(subset=keys, keep=False)
    if clash.any() and set(NAMING) <= set(df.columns):  # older files may lack the columns that tell rows apart
        lines = ", ".join(str(i + 1) for i in df.index[clash][:10])
        raise NotARunError(f"{path}: rows {lines} measure the same thing with different results: re-run the config "
                           "to rewrite the file from the cache")
    return df.reset_index(drop=True)


def write_report(run_dir: Path, wall_seconds: float | None = None) -> dict[str, Any]:
    """(Re)write summary.json, the figures and report.md of `run_dir`; return the summary.

    `wall_seconds` is the run's time; when None (re-drawing), the stored value is kept.
    """
    results = with_locks(load_results(run_dir))
    if wall_seconds is None and (run_dir / SUMMARY).is_file():
        try:
            stored = read_json(run_dir / SUMMARY)
            wall_seconds = stored.get("wall_seconds") if isinstance(stored, dict) else None
        except DataError as e:  # rewritten below; only the stored wall time is lost
            print(f"[pwlock] {e}: rewriting it (the wall time of the last run is not known)", file=sys.stderr)
    summary = summarize(results, wall_seconds)
    write_atomic(run_dir / SUMMARY, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    figures = [draw(results, run_dir / "figures" / f"{stem}.png") for stem, draw in FIGURES.items()]
    write_atomic(run_dir / "report.md", markdown(summary, figures, run_dir))
    return summary


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def pm(s: dict[str, Any] | None) -> str:
    """mean ± SEM [95% CI] of a summary entry (the CI where the entry has one)."""
    if s is None:
        return "n/a"
    ci = f" [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]" if s.get("ci95") else ""
    return f"{s['mean']:.3f} ± {s['sem']:.3f}{ci}"


def n_runs(s: dict[str, Any]) -> str:
    """How many runs an entry rests on: locks x runs per lock, or runs."""
    locks = s.get("locks")
    return f"{locks} x {s['seeds'] // locks}" if locks and s["seeds"] % locks == 0 else str(s["seeds"])


STATS_NOTE = ("mean over each lock's runs, then over lock seeds; ± SEM over lock seeds (over a single lock's runs "
              "when there is one lock); [95% CI]: two-level bootstrap (locks, then runs); runs: locks x runs per lock")


def markdown(summary: dict[str, Any], figures: list[Path | None], run_dir: Path) -> str:
    """report.md, from the summary alone (the figures are linked)."""
    lines = [f"# pwlock run: {summary['setting']}", ""]
    lines += [f"- {'pi_strong' if name == 'strong' else name} correctness: {fmt(c)}"
              for name, c in summary["policies"].items()]
    if summary.get("wall_seconds") is not None:
        lines.append(f"- wall time of the last run: {summary['wall_seconds']:.0f} s")
    selection = summary.get("selection")
    if selection:
        lines.append(f"- selection of epochs and learning rates: {selection['note']}")
    lines.append(f"- uncertainty: {STATS_NOTE}")
    lines += locked_section(summary) + sft_section(summary) + domains_section(summary)
    lines += prompting_section(summary) + sft_curves_section(summary) + rl_section(summary)
    for figure in figures:
        if figure is not None:
            lines += ["", f"![{figure.stem.replace('_', ' ')}]({figure.relative_to(run_dir)})"]
    lines += ["", "Rows: `results.jsonl` (`pwlock.report.load_results(run_dir)`, or `pandas.read_json(path, lines=True, "
              "precise_float=True)`); headline numbers: `summary.json`.", ""]
    return "\n".join(lines)


OTHER_PROMPTS = {"with_second_password": "with its second password (B.3.3: should imitate the intermediate policy)",
                 "with_other_domain_password": "with another domain's password (C.3: should stay weak)"}


def locked_section(summary: dict[str, Any]) -> list[str]:
    lines = ["", "## Locked models (greedy correctness on the validation split; mean ± SEM over lock seeds)", "",
             "| lock | with password | without password | lock seeds |", "|---|---|---|---|"]
    others = []
    for lock, v in summary["locked"].items():
        s = summary["locked_sem"].get(lock, {})
        cells = [fmt(v.get(key)) + (f" ± {s[key]:.3f}" if s.get("lock_seeds", 1) > 1 and key in s else "")
                 for key in ("with_password", "without_password")]
        lines.append(f"| {lock} | {cells[0]} | {cells[1]} | {s.get('lock_seeds', 'n/a')} |")  # one row per lock seed
        others += [f"- {lock}, {OTHER_PROMPTS.get(key, key)}: {fmt(c)}" for key, c in v.items()
                   if key not in ("with_password", "without_password")]
    return lines + ([""] + others if others else []) + weak_locks_lines(summary)


def weak_locks_lines(summary: dict[str, Any]) -> list[str]:
    """A warning per lock seed whose password no longer opens most of pi_strong's capability."""
    weak = summary.get("weak_locks", {})
    if not weak:
        return []
    return ["", f"**Weak locks.** The password restores less than {WEAK_LOCK_SHARE:.0%} of pi_strong's lead on these "
                "lock seeds, so locking lost the capability it was meant to hide; the means over lock seeds above "
                "and below include them:", ""] + [
        f"- {lock}, lock seed {seed}: with password {fmt(v['with_password'])}, without {fmt(v['without_password'])}, "
        f"pi_strong {fmt(v['strong'])}" for lock, seeds in weak.items() for seed, v in seeds.items()]


def sft_section(summary: dict[str, Any]) -> list[str]:
    if not summary.get("elicitation_by_source"):
        return []
    lines = ["", "## SFT elicitation (no password; demos from all domains; at the selected epoch count)", "",
             "| lock | demos from | k | epochs | correctness | gap recovered | runs |",
             "|---|---|---|---|---|---|---|"]
    for lock, sources in summary["elicitation_by_source"].items():
        for source, points in sources.items():
            lines += [f"| {lock} | {source} | {k} | {r['epochs']} | {pm(r)} | {pct(r['gap_recovered'])} | "
                      f"{n_runs(r)} |" for k, r in points.items()]
    ratio = summary.get("from_scratch_vs_sft_demos")
    if ratio and ratio["median_ratio"] is not None:
        pts = ", ".join(f"k={p['k']}: {p['ratio']:.2f}x" for p in ratio["points"])
        ci = ratio.get("median_ratio_ci95")
        ci_text = f", 95% CI [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        excluded = ratio.get("excluded", [])
        lines += ["", f"Demonstrations the from-scratch lock needs for the SFT lock's correctness: "
                      f"median {ratio['median_ratio']:.2f}x{ci_text} ({pts}); the paper saw 2-4x. "
                      f"{len(excluded)} point(s) excluded"
                  + (": " + "; ".join(f"k={e['k']} ({e['why']})" for e in excluded) if excluded else "") + "."]
    return lines


def domains_section(summary: dict[str, Any]) -> list[str]:
    domains = summary.get("domains")
    if not domains:
        return []
    lines = ["", "## Domain generalization (section 5.2; Appendix B.1.3, B.1.4, B.3.5, C.3)", "",
             "Locked models per domain:", "", "| lock | domain | with password | without password |",
             "|---|---|---|---|"]
    for lock, entry in domains.items():
        lines += [f"| {lock} | {d} | {fmt(v.get('with_password'))} | {fmt(v.get('without_password'))} |"
                  for d, v in entry["locked_by_domain"].items()]
    lines += ["", "SFT on demos from one domain (mean ± SEM over seeds; epochs chosen on all problems, then read "
                  "per domain; other domains: mean of their means, uncertainty sqrt(sum s_i^2)/K as in B.1.4):", "",
              "| lock | demos from | source | k | epochs | on that domain | on the other domains | all problems |",
              "|---|---|---|---|---|---|---|---|"]
    notes = []
    for lock, entry in domains.items():
        for demo_domain, per_k in entry["by_demo_domain"].items():
            for k, v in per_k.items():
                others = pm(v["others"]) if demo_domain != "all" else (
                    f"{pm(v['domain_mean'])} (every domain)" if v["domain_mean"] else "n/a")
                lines.append(f"| {lock} | {demo_domain} | {v['source']} | {k} | {v['epochs']} | {pm(v['same'])} | "
                             f"{others} | {pm(v['all'])} |")
        for k, h in entry["one_domain_unlocks_others"].items():
            frac, whole = h["gap_fraction"], h.get("all_domains_gap_fraction")
            share = "" if frac is None else f": {frac:.0%} of the locked gap" + (
                "" if whole is None else f", against {whole:.0%} for as many demos from all domains")
            notes.append(f"- {lock}, k={k}: demos from one domain ({', '.join(h['demo_domains'])}) raise correctness on "
                         f"the other domains by {h['lift']:+.3f} over the locked model without password{share}.")
    return lines + ([""] + notes if notes else [])


def prompting_section(summary: dict[str, Any]) -> list[str]:
    prompting = summary.get("prompting")
    if not prompting:
        return []
    lines = ["", "## Prompting attacks (Appendix B.3.1; locked model, mean ± SEM over lock seeds, or over the "
                 "problems (binomial) for a single lock)", "",
             "| lock | prompt | password in prompt | correctness | seeds |", "|---|---|---|---|---|"]
    notes = []
    for lock, p in prompting.items():
        lines += [f"| {lock} | {name} | {'yes' if a['with_password'] else 'no'} | {pm(a)} | {a['seeds']} |"
                  for name, a in p["attacks"].items()]
        raised = ", ".join(f"{r['attack']} ({r['mean']:.3f})" for r in p["raises_correctness"]) or "none"
        note = (f"- {lock}: without password {pm(p['locked_without_password'])}; attacks without the password "
                f"that raise correctness by more than twice the combined SEM: {raised}.")
        failed = [(n, p["positive_controls"][n]) for n in p.get("inconclusive", [])]
        if failed:
            note += (" **Positive control failed** (the same prompt with the password recovers less than half the "
                     f"locked gap, needed {failed[0][1]['needed']:.3f}), so these attacks are inconclusive, not "
                     "failed: " + ", ".join(f"{n} (with password {c['control_mean']:.3f})" for n, c in failed) + ".")
        notes.append(note)
    return lines + [""] + notes


def sft_curves_section(summary: dict[str, Any]) -> list[str]:
    curves = summary.get("sft_curves")
    if not curves:
        return []
    lines = ["", "## SFT on a policy's samples (Appendix B.2, B.3.3: does fine-tuning overshoot the imitated "
             "policy?)", "", "| lock | samples from | k | policy's own correctness | peak (epochs) | last (epochs) | "
             "peak - policy |", "|---|---|---|---|---|---|---|"]
    for lock, sources in curves.items():
        for source, per_k in sources.items():
            own = summary["policies"].get(source)
            for k, by_epochs in per_k.items():
                peak = max(by_epochs, key=lambda e: by_epochs[e]["mean"])
                last = max(by_epochs, key=int)
                lines.append(f"| {lock} | {source} | {k} | {fmt(own)} | {pm(by_epochs[peak])} ({peak}) | "
                             f"{pm(by_epochs[last])} ({last}) | "
                             f"{'n/a' if own is None else format(by_epochs[peak]['mean'] - own, '+.3f')} |")
    return lines


def rl_section(summary: dict[str, Any]) -> list[str]:
    if not summary.get("rl"):
        return []
    lines = ["", "## RL elicitation (no demonstrations; final correctness)", "",
             "| lock | method | start | reward | lr | generated samples | correctness | best on the way | "
             "gap recovered | runs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for lock, runs in summary["rl"].items():
        for r in runs.values():
            start = "locked model" if r["warm_start"] is None else f"after {r['warm_start']}"
            lines.append(f"| {lock} | {r['method']} | {start} | {r['reward']} | {r['lr']:g} | {r['samples']} | "
                         f"{pm(r)} | {r['best_mean']:.3f} | {pct(r['gap_recovered'])} | {n_runs(r)} |")
    return lines + ["", "DPO methods: the learning rate with the best final mean over seeds (Appendix G.3)."]
