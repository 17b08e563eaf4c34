"""bench/run.py: a ratio whose baseline is not installed is skipped, not failed."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def load_run():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_trl_the_trl_ratios_are_skipped_with_the_reason(monkeypatch, tmp_path):
    run = load_run()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))

    def no_subprocess(*args, **kwargs):
        raise AssertionError("nothing should run without its baseline")

    monkeypatch.setattr(run, "run", no_subprocess)
    checks = run.bench_sft(tmp_path, []) + run.bench_dpo(tmp_path, [])
    assert len(checks) == 4
    assert all(c["status"] == "skipped" and c["value"] is None and "trl is not installed" in c["reason"]
               for c in checks[:1] + checks[2:])


def test_check_compares_against_the_target():
    run = load_run()
    assert run.check("x", 2.1, 2.0)["status"] == "pass"
    assert run.check("x", 1.9, 2.0)["status"] == "fail"
    assert run.cpu_flags()["flags"]  # read from /proc/cpuinfo on Linux


def test_bf16_is_skipped_where_the_cpu_emulates_it(monkeypatch, tmp_path):
    import pwlock.train.sft

    run = load_run()
    monkeypatch.setattr(pwlock.train.sft, "bf16_supported", lambda device: False)  # e.g. no AVX512-BF16 / AMX
    monkeypatch.setattr(run, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("nothing should run")))
    checks = run.bench_bf16(tmp_path, [])
    assert [c["status"] for c in checks] == ["skipped", "skipped"]
    assert all("emulated" in c["reason"] for c in checks)
