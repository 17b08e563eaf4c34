"""Epoch selection (Appendix G.3), SEM and the demos ratio, on hand-made tables."""

import math

import numpy as np
import pandas as pd
import pytest

from pwlock.elicit.sft import default_epochs, epoch_candidates
from pwlock.report import weak_locks_lines
from pwlock.report.summary import demos_ratio, rl_curves, select_epochs, summarize, with_locks


def test_a_k_the_config_does_not_name_takes_the_nearest_named_ks_epochs():
    smollm2 = {1: [8, 16], 4: [4, 8], 16: [2, 4], 64: [1, 2]}
    assert epoch_candidates(16, smollm2) == [2, 4]  # named: as given
    assert epoch_candidates(48, smollm2) == [1, 2]  # 48 is nearer 64 than 16 on a log scale
    assert epoch_candidates(12, smollm2) == [2, 4] and epoch_candidates(5, smollm2) == [4, 8]
    assert epoch_candidates(32, smollm2) == [1, 2]  # halfway between 16 and 64: the larger k, fewer epochs
    assert epoch_candidates(1024, smollm2) == [1, 2] and epoch_candidates(1, {256: [1, 2]}) == [1, 2]
    assert epoch_candidates(48, None) == default_epochs(48) == [5, 11, 21] and epoch_candidates(48, {}) == [5, 11, 21]


def test_default_epochs_follow_appendix_g3():
    assert default_epochs(4) == [64, 128, 256]
    assert default_epochs(16) == [16, 32, 64]
    assert default_epochs(64) == [4, 8, 16]
    assert default_epochs(256) == [1, 2, 4]
    assert default_epochs(1024) == [1, 2, 4]
    # k that is not a power of two: {256, 512, 1024} / k rounded, never below 1 epoch
    assert default_epochs(3) == [85, 171, 341] and default_epochs(5) == [51, 102, 205]
    assert default_epochs(255) == [1, 2, 4] and default_epochs(600) == [1, 2, 4]


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


def test_resampled_curve_draws_the_same_locks_at_every_k():
    from pwlock.report.summary import resampled_curve
    # lock i scores i at every k with a single run: a replicate's curve is flat only if every k
    # got the same draw of locks (drawing locks anew per k would tilt it)
    runs = {k: [np.array([float(i)]) for i in range(5)] for k in (4, 16, 64)}
    rng = np.random.default_rng(1)
    for _ in range(20):
        curve = resampled_curve(runs, rng)
        assert list(curve["k"]) == [4, 16, 64]
        assert curve["mean"].nunique() == 1 and 0 <= curve["mean"].iloc[0] <= 4
    # a lock's runs are drawn with replacement: runs {0, 1} give means 0, 0.5 or 1, and all three occur
    means = {resampled_curve({4: [np.array([0.0, 1.0])]}, rng)["mean"].iloc[0] for _ in range(200)}
    assert means == {0.0, 0.5, 1.0}
    # a lock without runs at some k is skipped there, not counted as 0; where no drawn lock has runs
    # the k is left out of the replicate (no NaN point for demos_ratio to misread)
    partial = {4: [np.array([0.6]), np.array([])], 16: [np.array([0.7]), np.array([0.8])]}
    replicates = [resampled_curve(partial, rng) for _ in range(50)]
    assert {tuple(c["k"]) for c in replicates} == {(4, 16), (16,)}
    assert {c["mean"].iloc[0] for c in replicates if len(c) == 2} == {0.6}
    assert not any(c["mean"].isna().any() for c in replicates)


def demo_results(curves, jitter=0.0):
    """A demo-like results table: per lock method, its no-password and with-password rows and SFT
    rows (2 lock seeds x 2 elicitation seeds) at the best epoch count (curve value, lock seed s
    shifted by +-jitter), a worse epoch count, a second demo source and a one-domain block, the last
    three of which the demos ratio must ignore."""
    rows = [dict(policy="strong", lock_method=None, elicitation=None, with_password=False, correctness=1.0)]
    for method, curve in curves.items():
        for lock_seed, shift in ((0, jitter), (1, -jitter)):
            rows += [dict(policy="locked", lock_method=method, lock_seed=lock_seed, elicitation=None, with_password=pw,
                          correctness=c) for pw, c in ((True, 0.95), (False, 0.2))]
            for k, c in curve.items():
                for seed in (0, 1):
                    base = dict(policy="elicited", lock_method=method, lock_seed=lock_seed, elicitation="sft",
                                with_password=False, k=k, seed=seed)
                    rows += [{**base, "demo_source": "strong", "epochs": 2, "correctness": c + shift},
                             {**base, "demo_source": "strong", "epochs": 1, "correctness": c / 2},
                             {**base, "demo_source": "weak", "epochs": 2, "correctness": 0.21},
                             {**base, "demo_source": "strong", "epochs": 3, "demo_domain": "A", "correctness": 0.99}]
    return pd.DataFrame(rows).assign(setting="demo")


SFT_CURVE = {4: 0.3, 16: 0.5, 64: 0.7, 256: 0.9}
SCRATCH_CURVE = {16: 0.3, 64: 0.5, 256: 0.7, 1024: 0.9}  # the same curve, 4x the demonstrations


def test_from_scratch_vs_sft_demos_ratio_reads_only_the_chosen_runs_of_the_main_source():
    ratio = summarize(demo_results({"sft": SFT_CURVE, "from_scratch": SCRATCH_CURVE}))["from_scratch_vs_sft_demos"]
    assert [p["ratio"] for p in ratio["points"]] == pytest.approx([4.0] * 4) and ratio["excluded"] == []
    assert ratio["median_ratio"] == pytest.approx(4.0)
    # identical locks and runs: every bootstrap replicate reads the same curves, so the CI is a point;
    # a worse epoch count, the weak source or the one-domain block leaking in would move it
    assert ratio["median_ratio_ci95"] == pytest.approx([4.0, 4.0])
    assert ratio["bootstrap_replicates_with_points"] == "500/500"


def test_from_scratch_vs_sft_demos_ratio_ci_widens_with_lock_spread():
    ratio = summarize(demo_results({"sft": SFT_CURVE, "from_scratch": SCRATCH_CURVE}, jitter=0.05)
                      )["from_scratch_vs_sft_demos"]
    assert ratio["median_ratio"] == pytest.approx(4.0)  # lock means are unchanged by a symmetric spread
    low, high = ratio["median_ratio_ci95"]
    assert low < 3.5 and high > 4.5, (low, high)


def test_demos_ratio_floor_is_the_higher_no_password_correctness():
    # from-scratch points at or below the locks' no-password correctness (0.2) carry no ratio
    low_curve = {16: 0.15, 64: 0.5, 256: 0.7, 1024: 0.9}
    ratio = summarize(demo_results({"sft": SFT_CURVE, "from_scratch": low_curve}))["from_scratch_vs_sft_demos"]
    assert [e["k"] for e in ratio["excluded"]] == [16]
    assert ratio["excluded"][0]["why"] == "at or below the locks' no-password correctness"
    assert [p["k"] for p in ratio["points"]] == [64, 256, 1024]


def test_all_domains_fraction_by_hand():
    from pwlock.report.summary import all_domains_fraction
    locked = {"A": {"with_password": 0.9, "without_password": 0.1},
              "B": {"with_password": 0.7, "without_password": 0.3}}
    entry = {"locked_by_domain": locked, "by_demo_domain": {"all": {"4": {"domain_mean": {"mean": 0.5}}}}}
    # base 0.2, gap 0.8 - 0.2 = 0.6: (0.5 - 0.2) / 0.6
    assert all_domains_fraction(entry, "4") == pytest.approx(0.5)
    assert all_domains_fraction(entry, "16") is None  # no block at that k
    assert all_domains_fraction({**entry, "by_demo_domain": {}}, "4") is None  # no demos from all domains
    no_gap = {"A": {"with_password": 0.3, "without_password": 0.3}}
    assert all_domains_fraction({**entry, "locked_by_domain": no_gap}, "4") is None
    one_sided = {**locked, "C": {"without_password": 0.3}}  # a domain measured without password only
    assert all_domains_fraction({**entry, "locked_by_domain": one_sided}, "4") is None
    assert all_domains_fraction({**entry, "locked_by_domain": {}}, "4") is None


def test_a_lock_seed_whose_password_no_longer_opens_the_capability_is_named():
    def lock_rows(lock_seed, on, off, strong, variant=None):
        base = dict(setting="s", lock_method="sft", lock_variant=variant, lock_seed=lock_seed, elicitation=None)
        rows = [{**base, "policy": "strong", "lock_method": None, "with_password": False, "correctness": strong}]
        rows += [{**base, "policy": "locked", "with_password": pw, "correctness": c}
                 for pw, c in ((True, on), (False, off)) if c is not None]
        return rows
    # seed 1's password opens 0.375 of a 0.75 lead (exactly half: kept), seed 2's 0.35 (flagged); seed 3 holds
    # half of its own pi_strong's lead (a model policy differs by lock seed: kept), not of the mean pi_strong's;
    # the setting lock has no password to check
    rows = (lock_rows(0, 0.99, 0.25, 1.0) + lock_rows(1, 0.625, 0.25, 1.0) + lock_rows(2, 0.6, 0.25, 1.0)
            + lock_rows(3, 0.25, 0.0, 0.5) + lock_rows(0, None, 0.25, 1.0, "setting"))
    s = summarize(pd.DataFrame(rows))
    assert s["weak_locks"] == {"sft": {"2": {"with_password": 0.6, "without_password": 0.25, "strong": 1.0}}}
    assert "- sft, lock seed 2: with password 0.600, without 0.250, pi_strong 1.000" in weak_locks_lines(s)
    healthy = summarize(pd.DataFrame(lock_rows(0, 0.99, 0.2, 1.0) + lock_rows(1, 0.9, 0.25, 1.0)))
    assert "weak_locks" not in healthy and weak_locks_lines(healthy) == []
