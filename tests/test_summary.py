"""Epoch selection (Appendix G.3), SEM and the demos ratio, on hand-made tables."""

import math

import pandas as pd
import pytest

from pwlock.elicit.sft import default_epochs
from pwlock.report.summary import demos_ratio, rl_curves, select_epochs, summarize, with_locks


def test_default_epochs_follow_appendix_g3():
    assert default_epochs(4) == [64, 128, 256]
    assert default_epochs(16) == [16, 32, 64]
    assert default_epochs(64) == [4, 8, 16]
    assert default_epochs(256) == [1, 2, 4]
    assert default_epochs(1024) == [1, 2, 4]


def elicited(rows):
    return pd.DataFrame([dict(lock_method="sft", lock="sft", demo_source="strong", elicitation="sft", k=k, epochs=e, seed=s,
                              correctness=c) for k, e, s, c in rows])


def test_select_epochs_keeps_best_mean_over_seeds():
    df = elicited([(4, 64, 0, 0.5), (4, 64, 1, 0.7), (4, 128, 0, 0.9), (4, 128, 1, 0.1)])
    [r] = select_epochs(df).itertuples()
    # means: 64 -> 0.6, 128 -> 0.5; a single seed's 0.9 must not win.
    assert r.epochs == 64 and r.mean == pytest.approx(0.6)
    assert r.sem == pytest.approx(math.sqrt(0.02) / math.sqrt(2))  # std(ddof=1) of {0.5, 0.7} / sqrt(2)
    assert r.seeds == 2


def test_demos_ratio_interpolates_in_log_k():
    a = pd.DataFrame({"k": [4, 16, 64], "mean": [0.2, 0.6, 0.9]})
    b = pd.DataFrame({"k": [16, 64, 256], "mean": [0.2, 0.6, 0.95]})
    ratios, excluded = demos_ratio(a, b)
    assert [r["ratio"] for r in ratios] == pytest.approx([4.0, 4.0])
    # 0.95 is above a's best: not dropped silently, but listed with the bound it implies (256 / 64)
    assert excluded == [{"k": 256, "correctness": 0.95, "why": "above the other curve's best", "ratio_below": 4.0}]
    half, _ = demos_ratio(a, pd.DataFrame({"k": [32], "mean": [0.4]}))
    assert half[0]["equivalent_k"] == pytest.approx(8.0)  # halfway between 4 and 16 in log k
    _, low = demos_ratio(a, pd.DataFrame({"k": [8, 2], "mean": [0.1, 0.05]}), floor=0.07)
    assert [e["k"] for e in low] == [8, 2] and low[0]["ratio_above"] == pytest.approx(2.0)
    assert low[1]["why"] == "at or below the locks' no-password correctness"


def test_summarize_shape():
    rows = [dict(setting="s", policy="strong", lock_method=None, elicitation=None, with_password=False, correctness=1.0),
            dict(setting="s", policy="weak", lock_method=None, elicitation=None, with_password=False, correctness=0.25),
            dict(setting="s", policy="locked", lock_method="sft", elicitation=None, with_password=True, correctness=0.9),
            dict(setting="s", policy="locked", lock_method="sft", elicitation=None, with_password=False, correctness=0.3)]
    el = elicited([(4, 64, 0, 0.6), (4, 64, 1, 0.6)]).assign(setting="s", policy="elicited", with_password=False)
    s = summarize(pd.concat([pd.DataFrame(rows), el]), wall_seconds=12.0)
    assert s["strong_correctness"] == 1.0 and s["weak_correctness"] == 0.25
    assert s["locked"] == {"sft": {"with_password": 0.9, "without_password": 0.3}}
    assert s["elicitation"]["sft"]["4"]["mean"] == pytest.approx(0.6)
    assert s["elicitation"]["sft"]["4"]["gap_recovered"] == pytest.approx(0.5)
    assert s["wall_seconds"] == 12.0


def rl_rows(method, lr, seed, trace):
    return [dict(setting="s", policy="elicited", lock_method="sft", weak_policy="identity16", elicitation=method,
                 reward="binary", lr=lr, seed=seed, samples=x, with_password=False, correctness=c)
            for x, c in trace]


def test_rl_curves_pick_the_lr_with_the_best_final_mean_over_seeds():
    rows = (rl_rows("dpo", 1e-4, 0, [(0, 0.3), (100, 0.9), (200, 0.5)])   # best on the way, worse at the end
            + rl_rows("dpo", 1e-4, 1, [(0, 0.3), (100, 0.9), (200, 0.5)])
            + rl_rows("dpo", 2e-4, 0, [(0, 0.3), (100, 0.4), (200, 0.7)])
            + rl_rows("dpo", 2e-4, 1, [(0, 0.3), (100, 0.4), (200, 0.6)]))
    curves = with_locks(pd.DataFrame(rows)).pipe(rl_curves)
    assert set(curves["lr"]) == {2e-4} and list(curves["samples"]) == [0, 100, 200]
    final = curves[curves["samples"] == 200].iloc[0]
    assert final["mean"] == pytest.approx(0.65) and final["seeds"] == 2
    assert final["sem"] == pytest.approx(0.05)


def test_summarize_rl_section_per_lock_and_method():
    locked = [dict(setting="s", policy="locked", lock_method="sft", weak_policy="identity16", with_password=w,
                   correctness=c) for w, c in ((True, 1.0), (False, 0.2))]
    policies = [dict(setting="s", policy=p, with_password=False, correctness=c)
                for p, c in (("strong", 1.0), ("identity16", 0.25))]
    rows = rl_rows("expert_iteration", 3e-4, 0, [(0, 0.2), (640, 0.6)]) + rl_rows(
        "expert_iteration", 3e-4, 1, [(0, 0.2), (640, 0.8)])
    s = summarize(pd.DataFrame(policies + locked + rows))
    assert s["policies"] == {"strong": 1.0, "identity16": 0.25} and s["weak_correctness"] == 0.25  # the lock's pi_weak
    ei = s["rl"]["sft-identity16"]["expert_iteration"]
    assert ei["samples"] == 640 and ei["mean"] == pytest.approx(0.7) and ei["seeds"] == 2
    assert ei["gap_recovered"] == pytest.approx(0.625)  # (0.7 - 0.2) / (1.0 - 0.2)
