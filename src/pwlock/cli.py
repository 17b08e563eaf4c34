"""The `pwlock` command line: demo, run, report."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

DESCRIPTION = """\
pwlock builds password-locked models (a capability hidden behind a password, by
construction) and measures how much of it elicitation methods recover without the
password (Greenblatt et al., NeurIPS 2024).

  pwlock demo                 the built-in CPU reproduction of the paper's section 7
  pwlock run CONFIG.yaml      any experiment config (see configs/)
  pwlock report RUN_DIR       re-draw figures, tables and summary.json from stored results
  pwlock tasks [--count]      the tasks, their domains and where their data comes from
  pwlock organisms build      build a suite of locked model organisms with their benign twins
  pwlock stress-test METHOD   score elicitation methods (yours: module:attribute) on a suite
  pwlock detect DETECTOR      score detectors of locked models (yours: module:attribute) on a suite
"""


def packaged_config(name: str) -> Path:
    return Path(str(resources.files("pwlock") / "configs" / name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pwlock", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the built-in function-composition reproduction (CPU, 3 lock seeds: ~30 min on 2 cores)",
                          description="Lock a small transformer on the function-composition task (paper section 7) "
                                      "by SFT and from scratch, then unlock it by SFT on k demonstrations.")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run dir (default: runs/demo)")
    demo.add_argument("--cache-dir", type=Path, help="where trained models live (default: OUT/cache)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field, e.g. --set elicit.sft.seeds=[0,1] (repeatable)")
    demo.add_argument("--no-recompute", dest="recompute", action="store_false",
                      help="a cached unit that fails its integrity check is an error (default: recompute it)")

    run = sub.add_parser("run", help="run an experiment config (resumes if OUT holds its earlier run)",
                         description="Run an experiment config. Finished units (trained models, evaluations, "
                                     "elicitation runs) are cached by content hash, so re-running resumes.")
    run.add_argument("config", type=Path, help="YAML experiment config")
    run.add_argument("--out", type=Path, help="run dir (default: runs/<config name>)")
    run.add_argument("--cache-dir", type=Path, help="where trained models live (default: OUT/cache)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set task.n_problems=5000 (repeatable)")
    run.add_argument("--no-recompute", dest="recompute", action="store_false",
                     help="a cached unit that fails its integrity check is an error (default: recompute it)")

    report = sub.add_parser("report", help="re-draw figures, tables and summary.json of a run dir")
    report.add_argument("run_dir", type=Path)

    tasks = sub.add_parser("tasks", help="list the tasks, their domains and data sources",
                           description="List every task with its default options: domains and where its data "
                                       "comes from. --count also loads each one (offline: hub datasets count only "
                                       "if already in the local Hugging Face cache) and gives its size.")
    tasks.add_argument("--count", action="store_true", help="load each task's problems and count them")

    organisms = sub.add_parser("organisms", help="list, build or export model organisms (locked models + twins)",
                               description="An organism is a locked model with a known hidden capability, its card "
                                           "(organism.json), its benign weak twin (pi_weak only, no password) and "
                                           "strong twin (pi_strong), and its password kept apart from all of them.")
    organisms.add_argument("action", choices=["list", "build", "export"])
    organisms.add_argument("name", nargs="?", help="export: the organism's name (see `list`)")
    organisms.add_argument("dest", nargs="?", type=Path, help="export: the directory to create")
    organisms.add_argument("--suite", default="toy", help="a shipped suite's name (`pwlock organisms list`: demo, "
                                                          "demo-cb, toy, toy-cb, small-lm, small-lm-cb, 7b) or a suite "
                                                          "YAML file (default: toy)")
    organisms.add_argument("--root", type=Path, default=Path("organisms"),
                           help="where suites are built: ROOT/<suite>/<organism> (default: ./organisms)")
    organisms.add_argument("--cache-dir", type=Path, help="where training units live (default: ROOT/cache)")

    stress = sub.add_parser(
        "stress-test", help="score elicitation methods on a suite of organisms and their weak twins",
        description="Run each METHOD on every organism of the suite and on each organism's weak twin, with several "
                    "seeds, under one threat model (--setting); write results.jsonl, leaderboard.md, "
                    "leaderboard.json and leaderboard.png. METHOD: a registered name (--list) or module:attribute "
                    "for your own (see examples/).")
    plugin_run_args(stress, "method", default_setting="demos:16", default_seeds=[0, 1, 2], out="stress")

    detect = sub.add_parser(
        "detect", help="score detectors of locked models on a suite: organisms vs their benign twins",
        description="Run each DETECTOR on every organism's locked model (label 1) and on its weak and strong twins "
                    "(label 0), with several seeds, under one threat model (--setting); write results.jsonl, "
                    "detect.md, detect.json (AUROC with a bootstrap CI, TPR at 5%/1% FPR) and detect.png (ROC). "
                    "DETECTOR: a registered name (--list) or module:attribute / file.py:attribute for your own.")
    plugin_run_args(detect, "detector", default_setting="reward:4096", default_seeds=[0], out="detect")

    combine = sub.add_parser(
        "leaderboard", help="one leaderboard (or detection report) from several stress-test (detect) runs",
        description="Merge the results.jsonl of several `pwlock stress-test` runs (each one setting: demos:16, "
                    "reward:1280, ...) into one leaderboard with every method and setting, or of several "
                    "`pwlock detect` runs into one detection report. Nothing is re-run.")
    combine.add_argument("runs", nargs="+", type=Path, help="run dirs (or their results.jsonl files)")
    combine.add_argument("--out", type=Path, required=True, help="where the merged report goes")

    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except KeyboardInterrupt:
        print("pwlock: interrupted; finished units are kept, re-run the same command to resume", file=sys.stderr)
        return 130


def plugin_run_args(parser: argparse.ArgumentParser, what: str, *, default_setting: str, default_seeds: list[int],
                    out: str) -> None:
    """The arguments `stress-test` (methods) and `detect` (detectors) share."""
    parser.add_argument("plugins", nargs="*", metavar=what.upper())
    parser.add_argument("--list", action="store_true", help=f"list the registered {what}s and their settings")
    parser.add_argument("--suite", default="toy", help="a built suite's name or file, or a folder of organism dirs")
    parser.add_argument("--setting", default=default_setting,
                        help="demos:K[:strong|ground_truth] | reward:SAMPLES | prompt_only[:K] | unsupervised | "
                             f"demos:K[:SOURCE]+reward:SAMPLES (default: {default_setting})")
    parser.add_argument("--seeds", type=int, nargs="+", default=default_seeds,
                        help=f"{what} seeds (default: {' '.join(map(str, default_seeds))})")
    parser.add_argument("--root", type=Path, default=Path("organisms"),
                        help="where suites are built (default: ./organisms)")
    parser.add_argument("--out", type=Path, help=f"results dir (default: runs/{out}-<suite>-<setting>)")
    parser.add_argument("--workers", type=int, help="runs side by side, one thread each (default: one per core)")


def dispatch(args: argparse.Namespace) -> int:
    """Run a command: a user-caused failure (PwlockError) is one line and exit 2; anything else is a
    bug, shown with its traceback and exit 1."""
    from pwlock.errors import PwlockError
    from pwlock.io import disk_full

    try:
        return command(args)
    except PwlockError as e:
        print(f"pwlock: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`pwlock tasks | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the closed pipe
    except OSError as e:  # no space (not caught where it was written), or a path the user gave that cannot be used
        full = disk_full(e, Path(e.filename or "."))
        if full is not None:
            print(f"pwlock: error: {full}", file=sys.stderr)
            return 2
        if isinstance(e, (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)) and e.filename:
            print(f"pwlock: error: {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
        return internal_error()
    except Exception:  # noqa: BLE001 - a bug: keep its traceback
        return internal_error()


def internal_error() -> int:
    traceback.print_exc()
    print("pwlock: internal error (a bug in pwlock, not in your input): please report it with the traceback above "
          "and the command you ran", file=sys.stderr)
    return 1


def command(args: argparse.Namespace) -> int:
    from pwlock.experiments.config import load_config
    from pwlock.io import hold_run_dir
    from pwlock.report import write_report

    if args.command == "tasks":
        return list_tasks(count=args.count)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Idle OpenMP threads sleep instead of spinning (read once, when torch loads). On a shared CPU a
    # spinning thread waits out every parallel region for its descheduled sibling: beside one busy
    # process a demo-sized step kept 27% of its quiet speed, 69% with this (bench/shared_cpu.py);
    # the arithmetic, and so every number, is the same either way.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.command == "organisms":
        return organisms_command(args)
    if args.command == "stress-test":
        return stress_command(args)
    if args.command == "detect":
        return detect_command(args)
    if args.command == "leaderboard":
        return combine_command(args.runs, args.out)
    if args.command == "report":
        summary = write_report(args.run_dir)
        print_outputs(args.run_dir, summary)
        return 0
    path = packaged_config("function_composition.yaml") if args.command == "demo" else args.config
    cfg = load_config(path, args.overrides)
    out = args.out or Path("runs") / cfg.name
    from transformers.utils import logging as hf_logging

    from pwlock.experiments.runner import run_experiment
    from pwlock.train.accel import is_main_process

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if not is_main_process():  # under `accelerate launch` the main process reports
        run_experiment(cfg, out, args.cache_dir, recompute=args.recompute)
        return 0
    from pwlock.experiments.runner import check_run_dir

    check_run_dir(out)  # before a lock file is made in a foreign folder
    with hold_run_dir(out):  # the run and its report, with no other process writing into `out`
        seconds = run_experiment(cfg, out, args.cache_dir, recompute=args.recompute)
        summary = write_report(out, wall_seconds=seconds)
    print_outputs(out, summary)
    return 0


def organisms_command(args: argparse.Namespace) -> int:
    from pwlock.errors import OrganismError
    from pwlock.organisms import build_suite, export, load_suite, suite_names, suite_organisms

    if args.action == "list":
        for name in suite_names():
            suite, _ = load_suite(name)
            built = args.root / suite.name
            n = len(list(built.glob("*/organism.json"))) if built.is_dir() else 0
            print(f"{suite.name}  (version {suite.version}, {n} built under {built})  {suite.description}")
            for organism in (suite_organisms(name, args.root) if n else []):
                c, twins = organism.card.correctness, organism.card.twins
                print(f"  {organism.name}: with password {c['with_password']:.3f}, without {c['without_password']:.3f}"
                      f"; weak twin {twins['weak']['without_password']:.3f}, strong twin "
                      f"{twins['strong']['without_password']:.3f}")
        return 0
    if args.action == "build":
        from pwlock.experiments.schedule import usable_cores

        for path in build_suite(args.suite, args.root, args.cache_dir, workers=usable_cores()):
            print(path)
        return 0
    if args.name is None or args.dest is None:
        raise OrganismError("organisms export NAME DEST: name an organism (see `pwlock organisms list`) and a folder")
    matches = [o for o in suite_organisms(args.suite, args.root) if o.name == args.name]
    if not matches:
        raise OrganismError(f"no organism {args.name!r} in suite {args.suite} under {args.root}")
    print(export(matches[0], args.dest))
    return 0


def stress_command(args: argparse.Namespace) -> int:
    from pwlock.elicit.api import registered, resolve
    from pwlock.stress import stress_test

    return plugin_command(args, "method", registered, resolve, stress_test, out="stress", report="leaderboard")


def detect_command(args: argparse.Namespace) -> int:
    from pwlock.detect.api import registered, resolve
    from pwlock.detect.run import detect

    return plugin_command(args, "detector", registered, resolve, detect, out="detect", report="detect")


def plugin_command(args: argparse.Namespace, what: str, registered: Any, resolve: Any, run: Any, *, out: str,
                   report: str) -> int:
    """`stress-test` / `detect`: list the registered plug-ins, or run the named ones on a suite."""
    from pwlock.errors import ConfigError
    from pwlock.experiments.schedule import usable_cores
    from pwlock.organisms import suite_organisms
    from pwlock.stress import check_plugins, parse_setting

    if args.list:
        return print_plugins(registered())
    if not args.plugins:
        raise ConfigError(f"{args.command}: name at least one {what.upper()} (see --list), or module:attribute for "
                          "your own")
    setting = parse_setting(args.setting)
    check_plugins(args.plugins, setting, resolve, what)  # a bad plug-in fails before the suite is read
    organisms = suite_organisms(args.suite, args.root)
    folder = args.out or Path("runs") / f"{out}-{Path(args.suite).stem}-{str(setting).replace(':', '')}"
    rows = run(args.plugins, organisms, setting, args.seeds, folder, workers=args.workers or usable_cores())
    return print_results(folder, rows, report)


def print_plugins(plugins: dict) -> int:
    """One line per registered method or detector: name, settings, what it does."""
    settings = {name: ", ".join(plugin.settings) for name, plugin in plugins.items()}
    width = max(map(len, settings.values()), default=0)
    for name, plugin in plugins.items():
        # an instance's own `description` (a variant such as steering-random), else its class's docstring
        about = getattr(plugin, "description", None) or " ".join((type(plugin).__doc__ or "").split()).split(": ")[0]
        print(f"{name:18s} {settings[name]:{width}s}  {about}")
    return 0


def combine_command(runs: list[Path], out: Path) -> int:
    """`pwlock leaderboard RUN... --out DIR`: the runs' rows, merged, through the stress or detection report."""
    from pwlock.errors import ConfigError
    from pwlock.io import read_jsonl, write_jsonl

    rows, kinds = [], set()
    for run in runs:
        path = run / "results.jsonl" if run.is_dir() else run
        if not path.is_file():
            raise ConfigError(f"{run}: no results.jsonl (a `pwlock stress-test` or `pwlock detect` run dir)")
        got = read_jsonl(path)
        kinds |= {"detect" if "detector" in r else "leaderboard" if "method" in r else "unknown" for r in got}
        rows += got
    if len(kinds) != 1 or "unknown" in kinds:
        raise ConfigError(f"leaderboard: the runs mix stress-test and detect results, or hold neither ({sorted(kinds)})")
    report = kinds.pop()
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "results.jsonl", rows)
    if report == "detect":
        from pwlock.report.detection import write_detection_report

        write_detection_report(rows, out)
    else:
        from pwlock.report.leaderboard import write_leaderboard

        write_leaderboard(rows, out)
    return print_results(out, rows, report)


def print_results(out: Path, rows: list[dict], report: str) -> int:
    """The report, where its files are, and exit 2 if any run failed (the others' rows are kept)."""
    print((out / f"{report}.md").read_text())
    for name in ("results.jsonl", f"{report}.md", f"{report}.json", f"{report}.png"):
        print(f"{name}: {out / name}")
    failed = [r for r in rows if r["error"]]
    if failed:
        print(f"pwlock: {len(failed)} of {len(rows)} runs failed (listed in {report}.md); the others are kept",
              file=sys.stderr)
        return 2
    return 0


def list_tasks(count: bool) -> int:
    """One block per registered task; loading (with --count) never reaches the network."""
    if count:  # hub datasets then load from the local cache or fail fast
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from pwlock.tasks import TASKS

    for name, cls in TASKS.items():
        about = " ".join((cls.__doc__ or "").split("\n\n")[0].split()).split(". ")[0]  # first sentence
        if name == "mixture":  # made of other tasks: nothing to show without them
            print(f"{name}  {about}\n  config:  task: {{name: mixture, tasks: [{{name: ..., label: ...}}, ...]}}")
            continue
        task = cls()
        print(f"{name}  (version {task.version})  {about}")
        print(f"  data:    {task.data_source}")
        print(f"  domains: {', '.join(task.domains)}")
        if count:
            try:
                print(f"  size:    {len(task.problems())} problems")
            except Exception as e:  # noqa: BLE001 - report any loader failure and go on
                print(f"  size:    not available offline ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    return 0


def print_outputs(run_dir: Path, summary: dict) -> None:
    print(", ".join(f"{name} {c:.3f}" for name, c in summary["policies"].items()))
    for m, v in summary["locked"].items():  # the setting lock has no password; others may add conditions
        print(f"locked ({m}): " + ", ".join(f"{cond.replace('_', ' ')} {c:.3f}" for cond, c in v.items()
                                            if isinstance(c, float)))
    from pwlock.report.summary import WEAK_LOCK_SHARE  # lazy, like the report itself: pandas is slow to import
    for m, seeds in summary.get("weak_locks", {}).items():
        print(f"warning: weak lock ({m}): on lock seed(s) {', '.join(seeds)} the password restores less than "
              f"{WEAK_LOCK_SHARE:.0%} of pi_strong's lead (see report.md)")
    for m, by_k in summary["elicitation"].items():
        print(f"SFT elicitation ({m}): " + ", ".join(f"k={k} {v['mean']:.3f}±{v['sem']:.3f}" for k, v in by_k.items()))
    for lock, methods in summary.get("rl", {}).items():
        print(f"RL elicitation ({lock}): " + ", ".join(
            f"{m} {v['mean']:.3f}±{v['sem']:.3f}" for m, v in methods.items()) + " (final, no password)")
    print(f"results:  {run_dir / 'results.jsonl'}")
    print(f"summary:  {run_dir / 'summary.json'}")
    print(f"report:   {run_dir / 'report.md'}")
    for figure in sorted((run_dir / "figures").glob("*.png")):
        print(f"figure:   {figure}")


if __name__ == "__main__":
    sys.exit(main())
