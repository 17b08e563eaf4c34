"""The report's generalization sections (section 5.2, Appendix B, C.3) on a hand-made results table.

Every number below is chosen so that a wrong filter (per-domain or prompting rows leaking into the
overall sections), a wrong epoch choice or a wrong uncertainty formula changes the answer."""

import json
import math

import pandas as pd
import pytest

from pwlock.io import RESULTS, RUN_MARKER
from pwlock.report import write_report
from pwlock.report.figures import bands
from pwlock.report.summary import domain_summary, mean_of_domains, rl_curves, summarize, with_locks

COLUMNS = ["setting", "task", "task_version", "policy", "lock_method", "weak_policy", "lock_variant", "lock_seed",
           "elicitation", "demo_source", "demo_domain", "warm_start", "k", "epochs", "reward", "lr", "samples", "seed",
           "prompt", "with_password", "domain", "correctness", "n", "unit"]


def row(**fields):
    assert set(fields) <= set(COLUMNS), set(fields) - set(COLUMNS)
    return {**dict.fromkeys(COLUMNS), "setting": "toy", "task": "toy", "n": 100, "with_password": False, **fields}


def policy(name, c, **kw):
    return row(policy=name, correctness=c, **kw)


def locked(c, with_pw, variant=None, **kw):
    return row(policy="locked", lock_method="sft", weak_policy="weak", lock_variant=variant, with_password=with_pw,
               correctness=c, **kw)


def sft(k, epochs, seed, c, source="strong", variant=None, **kw):
    return row(policy="elicited", lock_method="sft", weak_policy="weak", lock_variant=variant, elicitation="sft",
               demo_source=source, k=k, epochs=epochs, seed=seed, lock_seed=0, correctness=c, **kw)


def attack(name, seed, c, with_pw=False, **kw):
    return row(policy="locked", lock_method="sft", weak_policy="weak", elicitation="prompting", prompt=name,
               seed=seed, lock_seed=seed, with_password=with_pw, correctness=c, **kw)


def rl(seed, trace, warm_start=None, **kw):
    return [row(policy="elicited", lock_method="sft", weak_policy="weak", elicitation="expert_iteration",
                reward="binary", lr=1e-4, seed=seed, lock_seed=0, samples=x, warm_start=warm_start, correctness=c, **kw)
            for x, c in trace]


def regular_lock_rows():
    """pi_strong/pi_weak, the regular lock over two lock seeds, per-domain rows everywhere."""
    rows = [policy("strong", 0.8, lock_seed=0), policy("strong", 0.9, lock_seed=1), policy("weak", 0.2),
            policy("strong", 0.01, domain="A")]  # a per-domain row: must not move pi_strong's correctness
    for lock_seed, (w, wo) in enumerate(((0.8, 0.2), (0.7, 0.3))):
        rows += [locked(w, True, lock_seed=lock_seed), locked(wo, False, lock_seed=lock_seed)]
    for domain, w, wo in (("A", 0.9, 0.1), ("B", 0.8, 0.2), ("C", 0.7, 0.3)):  # far from the overall numbers
        rows += [locked(w, True, domain=domain, lock_seed=s) for s in (0, 1)]
        rows += [locked(wo, False, domain=domain, lock_seed=s) for s in (0, 1)]
    # demos from all domains: 64 epochs wins on all problems (0.6 vs 0.5); per-domain rows are higher at 128
    rows += [sft(4, 64, s, c) for s, c in ((0, 0.55), (1, 0.65))]
    rows += [sft(4, 128, s, 0.5) for s in (0, 1)]
    rows += [sft(4, e, s, c, domain=d) for e, c in ((64, 0.6), (128, 0.99)) for d in "ABC" for s in (0, 1)]
    # demos from domain A: 128 epochs wins on all problems (0.55 vs 0.4) though 64 is better per domain
    rows += [sft(4, 64, s, 0.4, demo_domain="A") for s in (0, 1)]
    rows += [sft(4, 128, s, c, demo_domain="A") for s, c in ((0, 0.5), (1, 0.6))]
    rows += [sft(4, 64, s, 0.99, demo_domain="A", domain=d) for d in "ABC" for s in (0, 1)]
    rows += [sft(4, 128, s, c, demo_domain="A", domain=d)
             for d, cs in (("A", (0.7, 0.9)), ("B", (0.3, 0.5)), ("C", (0.5, 0.5))) for s, c in enumerate(cs)]
    # demos from domain B, one epoch count
    rows += [sft(4, 64, s, 0.7, demo_domain="B") for s in (0, 1)]
    rows += [sft(4, 64, s, c, demo_domain="B", domain=d) for d, c in (("A", 0.6), ("B", 0.9), ("C", 0.4))
             for s in (0, 1)]
    # some weak samples after the high-quality demos: better, but not the headline source
    rows += [sft(4, 256, s, 0.7, source="weak") for s in (0, 1)]
    return rows


def prompting_rows():
    rows = []
    for s in (0, 1):
        rows += [attack("few-shot k=3", s, (0.26, 0.24)[s]),          # 0.25 ± 0.01: no lift
                 attack("few-shot k=3 w/ pwd", s, (0.7, 0.8)[s], with_pw=True),  # high, but has the password
                 attack("pwd, all caps", s, (0.5, 0.6)[s]),           # 0.55 ± 0.05: +0.30 > 2 * 0.0707
                 attack("grandma jailbreak", s, (0.35, 0.45)[s]),     # 0.40 ± 0.05: +0.15 > 2 * 0.0707
                 attack("first half of the pwd", s, (0.3, 0.44)[s]),  # 0.37 ± 0.07: +0.12 < 2 * 0.0860
                 attack("few-shot k=3", s, 0.99, domain="A")]         # per-domain: not an attack row
    return rows


def other_lock_rows():
    """One password per domain (C.3), adversarial (B.3.3) and setting-variation (B.1.3) locks, an
    intermediate policy, and RL with and without a warm start (B.3.4)."""
    rows = [locked(0.6, True, "per_domain"), locked(0.3, False, "per_domain"),
            locked(0.32, False, "per_domain", prompt="other domain's password")]
    rows += [locked(c, False, "per_domain", domain=d) for d, c in (("A", 0.2), ("B", 0.4))]
    rows += [sft(4, 64, s, 0.5, variant="per_domain", demo_domain="A") for s in (0, 1)]
    rows += [sft(4, 64, s, c, variant="per_domain", demo_domain="A", domain=d)
             for d, c in (("A", 0.6), ("B", 0.45)) for s in (0, 1)]
    rows += [policy("identity8", 0.45), locked(0.7, True, "adversarial"), locked(0.2, False, "adversarial"),
             locked(0.44, None, "adversarial", prompt="second password")]
    rows += [sft(16, e, s, c, source="identity8", variant="adversarial")
             for e, cs in ((4, (0.3, 0.4)), (8, (0.5, 0.4)), (16, (0.45, 0.45))) for s, c in enumerate(cs)]
    # setting variation: no password at all, so no with-password rows
    rows += [locked(0.2, False, "setting"), locked(0.1, False, "setting", domain="spanish"),
             locked(0.3, False, "setting", domain="english")]
    rows += [sft(4, 64, s, 0.4, variant="setting", demo_domain="spanish") for s in (0, 1)]
    rows += [sft(4, 64, s, c, variant="setting", demo_domain="spanish", domain=d)
             for d, c in (("spanish", 0.35), ("english", 0.45)) for s in (0, 1)]
    for s in (0, 1):
        rows += rl(s, [(0, 0.25), (100, 0.5)]) + rl(s, [(0, 0.5), (100, 0.9)], warm_start="sft identity8 k=64")
        rows += rl(s, [(0, 0.99), (100, 0.99)], domain="A")
    return rows


@pytest.fixture
def results():
    return pd.DataFrame(regular_lock_rows() + prompting_rows() + other_lock_rows(), columns=COLUMNS)


def test_per_domain_and_prompt_rows_do_not_leak_into_overall_sections(results):
    s = summarize(results)
    assert s["policies"]["strong"] == pytest.approx(0.85)  # averaged over lock seeds, domain rows ignored
    assert s["locked"]["sft"] == pytest.approx({"with_password": 0.75, "without_password": 0.25})
    assert s["locked_sem"]["sft"]["lock_seeds"] == 2 and s["locked_sem"]["sft"]["with_password"] == pytest.approx(0.05)
    assert s["locked"]["sft-per_domain"] == pytest.approx(
        {"with_password": 0.6, "without_password": 0.3, "with_other_domain_password": 0.32})
    assert s["locked"]["sft-adversarial"]["with_second_password"] == pytest.approx(0.44)
    # demos from all domains, the first source: 64 epochs, per-domain and demo-domain rows left out
    point = s["elicitation"]["sft"]["4"]
    assert point["epochs"] == 64 and point["mean"] == pytest.approx(0.6) and point["seeds"] == 2
    assert point["gap_recovered"] == pytest.approx(0.7)  # (0.6 - 0.25) / (0.75 - 0.25)
    assert s["demo_source"] == ["identity8", "strong"]  # the adversarial lock only has intermediate samples
    by_source = s["elicitation_by_source"]["sft"]
    assert list(by_source) == ["strong", "weak"] and by_source["weak"]["4"]["mean"] == pytest.approx(0.7)
    assert "sft-per_domain" not in s["elicitation"]  # it only has demos from one domain


def test_domain_epochs_chosen_on_all_problems_then_read_per_domain(results):
    entry = domain_summary(with_locks(results))["sft"]
    assert entry["locked_by_domain"]["A"] == pytest.approx({"with_password": 0.9, "without_password": 0.1})
    a = entry["by_demo_domain"]["A"]["4"]
    assert a["epochs"] == 128 and a["all"]["mean"] == pytest.approx(0.55)
    assert a["same"]["mean"] == pytest.approx(0.8) and a["same"]["sem"] == pytest.approx(0.1)
    # others: mean of B (0.4 ± 0.1) and C (0.5 ± 0): 0.45, uncertainty sqrt(0.1^2 + 0^2) / 2 (B.1.4)
    assert a["others"]["mean"] == pytest.approx(0.45) and a["others"]["sem"] == pytest.approx(0.05)
    everywhere = entry["by_demo_domain"]["all"]["4"]
    assert everywhere["epochs"] == 64 and everywhere["same"] is None and everywhere["others"] is None
    assert everywhere["domain_mean"]["mean"] == pytest.approx(0.6)
    # lifts over the locked model on the other domains: A -> (0.45 - 0.25), B -> (0.5 - 0.2);
    # gaps there: A -> 0.75 - 0.25, B -> 0.8 - 0.2; fraction = mean lift / mean gap
    head = entry["one_domain_unlocks_others"]["4"]
    assert head["demo_domains"] == ["A", "B"] and head["lift"] == pytest.approx(0.25)
    assert head["gap_fraction"] == pytest.approx(0.25 / 0.55)


def test_mean_of_domains_uncertainty_by_hand():
    out = mean_of_domains([{"mean": 0.2, "sem": 0.03}, {"mean": 0.5, "sem": 0.04}, {"mean": 0.8, "sem": 0.0}])
    assert out["mean"] == pytest.approx(0.5)
    assert out["sem"] == pytest.approx(0.05 / 3)  # sqrt(0.03^2 + 0.04^2 + 0) / K, K = 3


def test_setting_lock_without_password_rows(results):
    s = summarize(results)
    assert s["locked"]["sft-setting"] == pytest.approx({"without_password": 0.2})
    head = s["domains"]["sft-setting"]["one_domain_unlocks_others"]["4"]
    assert head["lift"] == pytest.approx(0.45 - 0.3) and head["gap_fraction"] is None
    per_domain = s["domains"]["sft-per_domain"]["by_demo_domain"]["A"]["4"]
    assert per_domain["others"] == {"mean": pytest.approx(0.45), "sem": 0.0, "domains": 1}


def test_prompting_raises_correctness_picks_exactly_the_attacks_beyond_two_sem(results):
    p = summarize(results)["prompting"]
    assert list(p) == ["sft"]
    attacks = p["sft"]["attacks"]
    assert list(attacks) == ["few-shot k=3", "few-shot k=3 w/ pwd", "pwd, all caps", "grandma jailbreak",
                             "first half of the pwd"]
    assert attacks["few-shot k=3"]["mean"] == pytest.approx(0.25) and attacks["few-shot k=3"]["seeds"] == 2
    assert attacks["few-shot k=3 w/ pwd"]["with_password"] is True
    assert p["sft"]["locked_without_password"]["mean"] == pytest.approx(0.25)
    assert [r["attack"] for r in p["sft"]["raises_correctness"]] == ["pwd, all caps", "grandma jailbreak"]


def test_warm_started_rl_runs_stay_apart(results):
    curves = rl_curves(with_locks(results))
    assert len(curves) == 4  # (plain, warm-started) x 2 sample counts; per-domain rows left out
    final = curves[curves["samples"] == 100]
    assert dict(zip(final["warm_start"].fillna("none"), final["mean"])) == pytest.approx(
        {"none": 0.5, "sft identity8 k=64": 0.9})
    runs = summarize(results)["rl"]["sft"]
    assert runs["expert_iteration"]["mean"] == pytest.approx(0.5) and runs["expert_iteration"]["warm_start"] is None
    warm = runs["expert_iteration after sft identity8 k=64"]
    assert warm["mean"] == pytest.approx(0.9) and warm["warm_start"] == "sft identity8 k=64"


def test_sft_curves_by_training_sequences(results):
    curves = summarize(results)["sft_curves"]
    # strong demos and demo-domain blocks are not curves; weak samples (B.2) and intermediate ones are
    assert {lock: list(v) for lock, v in curves.items()} == {"sft": ["weak"], "sft-adversarial": ["identity8"]}
    assert curves["sft"]["weak"]["4"] == {"256": {"mean": pytest.approx(0.7), "sem": 0.0, "seeds": 2, "locks": 1,
                                                  "ci95": pytest.approx([0.7, 0.7])}}
    k16 = curves["sft-adversarial"]["identity8"]["16"]
    assert list(k16) == ["4", "8", "16"]
    assert k16["8"]["mean"] == pytest.approx(0.45) and k16["8"]["sem"] == pytest.approx(0.05)


def strict(text):
    def no_constant(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=no_constant)


def run_dir(tmp_path, rows):
    (tmp_path / RUN_MARKER).write_text("{}")
    (tmp_path / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


FIGURES = ["sft_elicitation", "domain_generalization", "prompting", "sft_curves", "rl_elicitation"]


def test_write_report_draws_every_section_as_strict_json(tmp_path, results):
    d = run_dir(tmp_path, results.to_dict("records"))
    summary = write_report(d)
    stored = strict((d / "summary.json").read_text())
    assert stored["domains"]["sft-setting"]["by_demo_domain"]["spanish"]["4"]["all"]["mean"] == pytest.approx(0.4)
    assert "sft-setting" not in stored["elicitation"]  # its only demos come from one domain
    assert summary == stored
    for stem in FIGURES:
        for suffix in (".png", ".pdf"):
            f = d / "figures" / f"{stem}{suffix}"
            assert f.is_file() and f.stat().st_size > 1000, f
    report = (d / "report.md").read_text()
    for heading in ("## Domain generalization", "## Prompting attacks", "## SFT on a policy's samples",
                    "## RL elicitation", "after sft identity8 k=64", "of the locked gap"):
        assert heading in report


def test_write_report_skips_sections_without_rows_and_reads_old_files(tmp_path):
    old = [{k: v for k, v in r.items() if k in {"setting", "policy", "lock_method", "weak_policy", "elicitation",
                                                 "demo_source", "k", "epochs", "seed", "with_password", "correctness"}}
           for r in regular_lock_rows() if r["domain"] is None and r["demo_domain"] is None]
    d = run_dir(tmp_path, old)
    write_report(d)
    summary = strict((d / "summary.json").read_text())
    for key in ("domains", "prompting", "rl"):
        assert key not in summary
    assert summary["elicitation"]["sft"]["4"]["mean"] == pytest.approx(0.6)
    assert list(summary["sft_curves"]["sft"]) == ["weak"]
    for stem in FIGURES:
        drawn = stem in ("sft_elicitation", "sft_curves")
        assert (d / "figures" / f"{stem}.png").is_file() == drawn, stem
    assert "## Domain generalization" not in (d / "report.md").read_text()


def test_no_gap_gives_null_not_nan():
    rows = [locked(0.2, False, "setting"), sft(4, 64, 0, 0.5, variant="setting")]
    s = summarize(pd.DataFrame(rows, columns=COLUMNS))
    assert s["elicitation"]["sft-setting"]["4"]["gap_recovered"] is None
    strict(json.dumps(s, allow_nan=False))
    assert not math.isnan(s["elicitation"]["sft-setting"]["4"]["mean"])


def test_prompting_sem_is_over_problems_for_a_single_lock():
    """One lock seed: the binomial SEM over the evaluated problems; several: the SEM over seeds."""
    from pwlock.report.summary import over_problems_if_single

    one = over_problems_if_single(pd.DataFrame({"correctness": [0.2], "n": [100]}))
    assert one["sem_over"] == "problems" and one["sem"] == pytest.approx((0.2 * 0.8 / 100) ** 0.5)
    three = over_problems_if_single(pd.DataFrame({"correctness": [0.1, 0.2, 0.3], "n": [100] * 3}))
    assert three["sem_over"] == "seeds" and three["sem"] == pytest.approx(0.1 / 3 ** 0.5)


def test_figure_bands_say_locks_when_the_runs_rest_on_several():
    one = pd.DataFrame([sft(4, 1, s, 0.5) for s in range(3)])
    assert bands(one) == "mean ± SEM over seeds"
    three = pd.concat([one.assign(lock_seed=lock) for lock in range(3)])
    assert bands(three) == "mean ± SEM over 3 locks"
    assert bands(one.drop(columns="lock_seed")) == "mean ± SEM over seeds"
