"""Tiny end-to-end runs of the generalization and sensitivity experiments (section 5.2, Appendices
B and C.3): lock variants, per-domain rows, one-domain demonstrations, lock seeds, prompting
attacks, RL after a warm start, a setting variation as the password."""

import json

import pandas as pd
import pytest

from pwlock.cli import main
from pwlock.experiments import runner
from pwlock.tasks.function_composition import DOMAIN_SIZE
from tests.helpers import write_config

pytestmark = pytest.mark.slow

DOMAINS = ["fn0-7", "fn8-15", "fn16-23", "fn24-31"]
DOMAIN_PASSWORDS = dict(zip(DOMAINS, ["salmon", "walrus", "pelican", "octopus"]))


def fc_domain(prompt: str) -> str:
    """The domain of a function-composition prompt: the group of its first function."""
    first = int(prompt.split(" | ")[1].split()[0][2:])
    return DOMAINS[first // DOMAIN_SIZE]


def results(out):
    return pd.read_json(out / "results.jsonl", lines=True, dtype=False)


@pytest.fixture(scope="module")
def variants_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    seen = {}
    original = runner.lock_examples

    def spy(task, problems, *args, **kwargs):  # which problems each lock variant trains on
        key = "per_domain" if kwargs.get("domain_passwords") else "second" if kwargs.get("second") else "other"
        seen.setdefault(key, set()).update(p.domain for p in problems)
        seen.setdefault("all", set()).update(p.domain for p in problems)
        seen.setdefault("sizes", []).append(len(problems))
        return original(task, problems, *args, **kwargs)

    config = write_config(
        root / "c.yaml",
        lock__methods=["sft"],
        lock__variants=["regular", "per_domain", "held_out", "adversarial"],
        lock__domain_passwords=DOMAIN_PASSWORDS, lock__held_out_domain="fn24-31",
        lock__second_password="marlin", lock__second_policy="identity8",
        elicit__sft=[{"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2},
                     {"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2, "domains": "each",
                      "locks": ["sft", "sft-held_out"]},
                     {"ks": [2], "seeds": [0], "epochs": {2: [1, 2]}, "batch_size": 2, "source": "identity8",
                      "locks": ["sft-adversarial"]}],
        eval__by_domain=True,
    )
    out = root / "run"
    real_sft = runner.sft

    def sft_spy(model, tokenizer, data, args, **kwargs):  # what each lock trains on, epoch by epoch
        if kwargs.get("desc", "").startswith("lock "):
            seen.setdefault("d_lock", {})[kwargs["desc"][5:]] = [data(epoch) for epoch in range(3)]
        return real_sft(model, tokenizer, data, args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "lock_examples", spy)
    mp.setattr(runner, "sft", sft_spy)
    try:
        assert main(["run", str(config), "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out, seen


def test_every_evaluation_has_a_row_per_domain(variants_run):
    out, _ = variants_run
    df = results(out)
    overall = df[df["domain"].isna()]
    assert len(df) == 5 * len(overall)  # each overall row, then one row per domain
    keys = ["policy", "lock_variant", "elicitation", "demo_source", "demo_domain", "k", "epochs", "seed", "prompt",
            "with_password"]
    for _, group in df.groupby(keys, dropna=False):
        whole = group[group["domain"].isna()]
        parts = group[group["domain"].notna()]
        assert len(whole) == 1 and sorted(parts["domain"]) == sorted(DOMAINS)
        assert parts["n"].sum() == whole["n"].iloc[0]
        # the domains' correctness, weighted by their sizes, is the overall correctness
        assert (parts["correctness"] * parts["n"]).sum() / parts["n"].sum() == pytest.approx(
            whole["correctness"].iloc[0])


def test_lock_variants_and_their_conditions(variants_run):
    out, seen = variants_run
    df = results(out)
    locked = df[(df["policy"] == "locked") & df["domain"].isna()]
    by_variant = {v if isinstance(v, str) else "regular": set(zip(g["with_password"], g["prompt"].fillna("-")))
                  for v, g in locked.groupby(locked["lock_variant"].fillna("regular"))}
    assert by_variant == {
        "regular": {(True, "-"), (False, "-")},
        "held_out": {(True, "-"), (False, "-")},
        "per_domain": {(True, "-"), (False, "-"), (False, "other domain's password")},
        "adversarial": {(True, "-"), (False, "-"), (False, "second password")},
    }
    assert seen["per_domain"] == set(DOMAINS) and seen["second"] == set(DOMAINS)
    assert seen["all"] == set(DOMAINS)
    # one lock saw every domain but fn24-31: the held-out lock
    assert len({s for s in seen["sizes"]}) == 2 and min(seen["sizes"]) < max(seen["sizes"])
    names = sorted(p.name.rsplit("-", 1)[0] for p in (out / "cache").glob("lock_*"))
    assert names == ["lock_sft", "lock_sft-adversarial", "lock_sft-held_out", "lock_sft-per_domain"]


def test_held_out_lock_never_sees_its_domain(variants_run):
    out, seen = variants_run
    [unit] = (out / "cache").glob("lock_sft-held_out-*")
    key = json.loads((unit / "unit.json").read_text())["key"]
    assert key["variant"] == {"name": "held_out", "held_out_domain": "fn24-31"}
    # the examples the held-out lock trained on, every epoch: no problem of fn24-31 under any password
    for epoch in seen["d_lock"]["sft-held_out"]:
        domains = {fc_domain(e.prompt) for e in epoch}
        assert domains == set(DOMAINS) - {"fn24-31"}
    for epoch in seen["d_lock"]["sft"]:  # while the regular lock sees it
        assert {fc_domain(e.prompt) for e in epoch} == set(DOMAINS)


def test_d_lock_is_redrawn_every_epoch(variants_run):
    """The runner hands training a fresh D_lock each epoch (Appendix C.1): same problems and
    completions, other passwords on the weak side, the 20% with no password each time."""
    _, seen = variants_run
    assert set(seen["d_lock"]) == {"sft", "sft-per_domain", "sft-held_out", "sft-adversarial"}
    for name, epochs in seen["d_lock"].items():
        per_problem = 3 if name == "sft-adversarial" else 2
        slots = [[e.prompt.split(" | ")[0] for e in epoch[1::per_problem]] for epoch in epochs]
        assert slots[0] != slots[1] and slots[1] != slots[2], name
        for epoch, weak_slots in zip(epochs, slots):
            assert sorted(e.completion for e in epoch) == sorted(e.completion for e in epochs[0])
            assert weak_slots.count("_") == round(0.2 * len(weak_slots)), name


def test_demonstrations_from_one_domain(variants_run):
    out, _ = variants_run
    df = results(out)
    sft = df[(df["elicitation"] == "sft") & df["domain"].isna()]
    per_lock = {lock: sorted(g["demo_domain"].fillna("all")) for lock, g in
                sft[sft["demo_source"] == "strong"].groupby(sft["lock_variant"].fillna("regular"))}
    assert per_lock["regular"] == per_lock["held_out"] == sorted(["all", *DOMAINS])
    assert per_lock["per_domain"] == per_lock["adversarial"] == ["all"]  # the `locks` filter
    for domain in DOMAINS:
        [unit] = (out / "cache").glob(f"elicit_sft_sft_{domain}_k2_s0-*")
        demos = [json.loads(line) for line in (unit / "demos.jsonl").read_text().splitlines()]
        assert len(demos) == 2 and {fc_domain(d["prompt"]) for d in demos} == {domain}
    intermediate = sft[sft["demo_source"] == "identity8"]
    assert set(intermediate["lock_variant"]) == {"adversarial"} and set(intermediate["epochs"]) == {1, 2}
    # the intermediate policy's own correctness is measured too (Figure 16's reference line)
    assert "identity8" in set(df["policy"])


@pytest.fixture(scope="module")
def prompting_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("prompting")
    config = write_config(
        root / "c.yaml",
        lock__methods=["sft"], lock__seeds=[0, 1],
        lock__password="This problem is quite special, read it carefully!",
        elicit__sft=None,
        elicit__prompting={"fewshot_ks": [1, 2], "n_wrong": 2},
        elicit__rl=[{"methods": ["expert_iteration"], "seeds": [0], "rounds": 2, "n": 4, "eval_every": 1,
                     "batch_size": 4},
                    {"methods": ["expert_iteration"], "seeds": [0], "rounds": 2, "n": 4, "eval_every": 1,
                     "batch_size": 4, "warm_start": {"source": "identity8", "k": 4, "epochs": 2}}],
    )
    out = root / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    return out


def test_lock_seeds_replicate_the_run(prompting_run):
    df = results(prompting_run)
    assert set(df["lock_seed"]) == {0, 1}
    locks = list((prompting_run / "cache").glob("lock_sft-*"))
    assert len(locks) == 2  # one locked model per seed
    locked = df[(df["policy"] == "locked") & df["prompt"].isna()]
    assert len(locked) == 4


def test_prompting_attacks(prompting_run):
    df = results(prompting_run)
    attacks = df[df["elicitation"] == "prompting"]
    names = list(attacks[attacks["lock_seed"] == 0]["prompt"])
    assert names[:4] == ["few-shot k=1", "few-shot k=2", "few-shot k=1 w/ pwd", "few-shot k=2 w/ pwd"] or \
        set(names[:4]) == {"few-shot k=1", "few-shot k=2", "few-shot k=1 w/ pwd", "few-shot k=2 w/ pwd"}
    assert sum(n.startswith("wrong password seen in training") for n in names) == 2
    assert sum("jailbreak" in n.lower() or "powerful" in n.lower() or "sure" in n.lower() for n in names) == 3
    with_pw = set(attacks[attacks["with_password"]]["prompt"])
    assert with_pw == {"few-shot k=1 w/ pwd", "few-shot k=2 w/ pwd", "exact pwd"}
    assert (attacks["seed"] == attacks["lock_seed"]).all()
    # the exact password as an attack is the locked model's with-password evaluation
    for seed in (0, 1):
        at = attacks[(attacks["lock_seed"] == seed) & (attacks["prompt"] == "exact pwd")]["correctness"].item()
        locked = df[(df["lock_seed"] == seed) & (df["policy"] == "locked") & df["prompt"].isna()
                    & df["with_password"]]["correctness"].item()
        assert at == locked


def test_rl_after_a_warm_start(prompting_run):
    df = results(prompting_run)
    rl = df[df["elicitation"] == "expert_iteration"]
    assert set(rl["warm_start"].fillna("none")) == {"none", "sft identity8 k=4"}
    assert len(list((prompting_run / "cache").glob("elicit_expert_iteration_sft_after_identity8_k4_*"))) == 2
    [unit] = list((prompting_run / "cache").glob("elicit_expert_iteration_sft_after_identity8_k4_*"))[:1]
    assert len((unit / "warm_start_demos.jsonl").read_text().splitlines()) == 4


def test_setting_variation_as_password(tmp_path):
    config = write_config(
        tmp_path / "c.yaml",
        task={"name": "mixture", "tasks": [
            {"name": "function_composition", "label": "digits", "n_problems": 500},
            {"name": "function_composition", "label": "letters", "n_problems": 500, "alphabet": "letters",
             "problem_seed": 100}]},
        lock__methods=["sft"], lock__variants=["setting"], lock__strong_domains=["digits"],
        elicit__sft={"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2, "domains": ["letters"]},
        eval__by_domain=True,
    )
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    df = results(out)
    locked = df[df["policy"] == "locked"]
    assert set(locked["with_password"]) == {False} and set(locked["domain"].fillna("all")) == {
        "all", "digits", "letters"}
    [unit] = (out / "cache").glob("elicit_sft_sft-setting_letters_k2_s0-*")
    demos = [json.loads(line) for line in (unit / "demos.jsonl").read_text().splitlines()]
    assert all(not any(c.isdigit() for c in d["completion"]) for d in demos)  # letters demonstrations


@pytest.mark.parametrize("changes, message", [
    (dict(lock__variants=["regular", "per_domain"], lock__domain_passwords={"fn0-7": "salmon", "fn8-15": "walrus"}),
     "one password per domain"),
    (dict(lock__variants=["held_out"], lock__held_out_domain="fn99"), "held_out_domain"),
    (dict(elicit__sft={"ks": [2], "domains": ["fn99"]}), r"elicit.sft.domains: 'fn99'"),
    (dict(elicit__sft={"ks": [2], "locks": ["sft-nope"]}), "not locks of this config"),
    (dict(elicit__sft={"ks": [2], "source": "nope"}), "elicit.sft.source: 'nope' unknown"),
    (dict(lock__variants=["adversarial"], lock__second_password="marlin", lock__second_policy="nope"),
     "second_policy"),
    (dict(elicit__prompting={"fewshot_ks": [100]}), "fewshot_ks"),
])
def test_bad_generalization_configs_fail_before_work(tmp_path, capsys, changes, message):
    config = write_config(tmp_path / "c.yaml", **changes)
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "cache").exists()


def test_variant_fields_go_with_their_variant(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", lock__held_out_domain="fn0-7")
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "held_out_domain goes with variants: [held_out]" in capsys.readouterr().err


def test_units_finished_by_an_older_pwlock_are_read(tmp_path):
    """A unit whose key did not change but whose rows predate today's columns (e.g. a cached
    locked-model evaluation) still yields complete rows, the new columns None."""
    config = write_config(tmp_path / "c.yaml", lock__methods=["sft"],
                          elicit__sft={"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2})
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    old_columns = {"setting", "task", "task_version", "policy", "lock_method", "weak_policy", "elicitation",
                   "demo_source", "k", "epochs", "reward", "lr", "samples", "seed", "with_password", "correctness",
                   "n", "unit"}
    for unit in [*(out / "cache").glob("eval_lock_*"), *(out / "cache").glob("elicit_sft_*")]:
        rows = [json.loads(line) for line in (unit / "rows.jsonl").read_text().splitlines()]
        (unit / "rows.jsonl").write_text("".join(
            json.dumps({k: v for k, v in r.items() if k in old_columns}) + "\n" for r in rows))
    before = results(out)
    assert main(["run", str(config), "--out", str(out)]) == 0
    after = results(out)
    assert list(after.columns) == list(before.columns) and after["domain"].isna().all()
    pd.testing.assert_frame_equal(after, before)
