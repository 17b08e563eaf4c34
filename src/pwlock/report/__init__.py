"""Reports: summary.json, figures and a markdown page, from a run's stored results only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pwlock.io import RESULTS, RUN_MARKER, SUMMARY, write_atomic
from pwlock.report.figures import figure_rl_elicitation, figure_sft_elicitation
from pwlock.report.summary import locks, select_epochs, summarize, with_locks


class NotARunError(ValueError):
    """The folder is missing or is not a pwlock run dir."""


def load_results(run_dir: Path) -> pd.DataFrame:
    """The results table of a run dir, one row per measurement."""
    if not run_dir.is_dir():
        raise NotARunError(f"run dir not found: {run_dir}")
    if not (run_dir / RUN_MARKER).is_file():
        raise NotARunError(f"{run_dir} is not a pwlock run dir (no {RUN_MARKER})")
    if not (run_dir / RESULTS).is_file():
        raise NotARunError(f"{run_dir} has no {RESULTS} yet: the run has not finished once")
    return pd.read_json(run_dir / RESULTS, lines=True, dtype=False, precise_float=True)


def write_report(run_dir: Path, wall_seconds: float | None = None) -> dict[str, Any]:
    """(Re)write summary.json, the figures and report.md of `run_dir`; return the summary.

    `wall_seconds` is the run's time; when None (re-drawing), the stored value is kept.
    """
    results = with_locks(load_results(run_dir))
    if wall_seconds is None and (run_dir / SUMMARY).is_file():
        wall_seconds = json.loads((run_dir / SUMMARY).read_text()).get("wall_seconds")
    summary = summarize(results, wall_seconds)
    write_atomic(run_dir / SUMMARY, json.dumps(summary, indent=1) + "\n")
    figures = [figure_sft_elicitation(results, run_dir / "figures" / "sft_elicitation.png"),
               figure_rl_elicitation(results, run_dir / "figures" / "rl_elicitation.png")]
    write_atomic(run_dir / "report.md", markdown(results, summary, figures, run_dir))
    return summary


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(results: pd.DataFrame, summary: dict[str, Any], figures: list[Path | None], run_dir: Path) -> str:
    lines = [f"# pwlock run: {summary['setting']}", ""]
    lines += [f"- pi_{'strong' if name == 'strong' else 'weak'} ({name}) correctness: {fmt(c)}"
              for name, c in summary["policies"].items()]
    if summary.get("wall_seconds") is not None:
        lines.append(f"- wall time of the last run: {summary['wall_seconds']:.0f} s")
    lines += ["", "## Locked models (greedy correctness on the validation split)", "",
              "| lock method | with password | without password |", "|---|---|---|"]
    for m, v in summary["locked"].items():
        lines.append(f"| {m} | {fmt(v.get('with_password'))} | {fmt(v.get('without_password'))} |")
    elicited = results[results["elicitation"] == "sft"]
    if len(elicited):
        lines += ["", "## SFT elicitation (no password; mean ± SEM over seeds at the selected epoch count)", "",
                  "| lock method | demos from | k | epochs | correctness | gap recovered | seeds |",
                  "|---|---|---|---|---|---|---|"]
        chosen = select_epochs(elicited)
        for r in pd.concat([chosen[chosen["lock"] == m] for m in locks(results)]).itertuples():
            rec = summary["elicitation"][r.lock][str(int(r.k))]["gap_recovered"]
            lines.append(f"| {r.lock} | {r.demo_source} | {int(r.k)} | {r.epochs} | "
                         f"{r.mean:.3f} ± {r.sem:.3f} | {rec:.0%} | {r.seeds} |")
        ratio = summary.get("from_scratch_vs_sft_demos")
        if ratio and ratio["median_ratio"] is not None:
            pts = ", ".join(f"k={p['k']}: {p['ratio']:.1f}x" for p in ratio["points"])
            lines += ["", f"Demonstrations the from-scratch lock needs for the SFT lock's correctness: "
                          f"median {ratio['median_ratio']:.1f}x ({pts}); the paper saw 2-4x."]
    if summary.get("rl"):
        lines += ["", "## RL elicitation (no demonstrations; final correctness, mean ± SEM over seeds)", "",
                  "| lock | method | reward | lr | generated samples | correctness | best on the way | "
                  "gap recovered | seeds |", "|---|---|---|---|---|---|---|---|---|"]
        for lock, methods in summary["rl"].items():
            for method, r in methods.items():
                lines.append(f"| {lock} | {method} | {r['reward']} | {r['lr']:g} | {r['samples']} | "
                             f"{r['mean']:.3f} ± {r['sem']:.3f} | {r['best_mean']:.3f} | "
                             f"{r['gap_recovered']:.0%} | {r['seeds']} |")
        lines += ["", "DPO methods: the learning rate with the best final mean over seeds (Appendix G.3)."]
    for figure in figures:
        if figure is not None:
            lines += ["", f"![{figure.stem.replace('_', ' ')}]({figure.relative_to(run_dir)})"]
    lines += ["", "Rows: `results.jsonl` (`pwlock.report.load_results(run_dir)`, or `pandas.read_json(path, lines=True, "
              "precise_float=True)`); headline numbers: `summary.json`.", ""]
    return "\n".join(lines)
