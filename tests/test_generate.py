"""Batched generation with left padding must match one-at-a-time generation."""


from pwlock.evaluate import evaluate
from pwlock.generate import generate


def test_batched_greedy_matches_single(tokenizer, tiny_model):
    prompts = ["_ | fn1 | 1 2 3 4 |", "swordfish | fn1 fn2 fn3 | 9 9 9 9 |", "dog | fn7 fn2 | 0 1 0 1 |"]
    batched = generate(tiny_model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
    single = [generate(tiny_model, tokenizer, [p], max_new_tokens=8)[0] for p in prompts]
    assert batched == single
    assert tokenizer.padding_side == "right"  # restored after generation


def test_sampling_is_seeded_and_differs_from_greedy(tokenizer, tiny_model):
    prompts = ["_ | fn1 | 1 2 3 4 |"] * 8
    a = generate(tiny_model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=1)
    b = generate(tiny_model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=1)
    assert a == b and len(set(a)) > 1  # an untrained model spreads its mass


def test_evaluate_counts_correct_completions(task, tokenizer, tiny_model):
    problems = task.problems()[:6]
    answers = [p.answer if i % 2 else "0000|0000" for i, p in enumerate(problems)]
    ev = evaluate(tiny_model, tokenizer, task, problems, password=None, max_new_tokens=4,
                  generator=lambda *a, **k: answers)
    expected = sum(task.score(p, a) for p, a in zip(problems, answers)) / 6
    assert ev.correctness == expected and ev.n == 6 and ev.completions == answers


def test_multiple_choice_tasks_are_evaluated_by_letter_logits_not_generation():
    from pwlock.models import build_model, build_tokenizer
    from pwlock.tasks.multiple_choice import MMLU
    from tests.test_multiple_choice import FIXTURE

    task = MMLU(source=str(FIXTURE))
    problems = task.problems()
    tokenizer = build_tokenizer(["A", "B", "C", "D", "Answer", ":"])
    model = build_model(tokenizer, hidden_size=16, layers=1, heads=2, seed=0)

    def no_generation(*args, **kwargs):
        raise AssertionError("multiple-choice evaluation must not generate")

    ev = evaluate(model, tokenizer, task, problems, password=None, max_new_tokens=4, generator=no_generation)
    assert set(ev.completions) <= {"A", "B", "C", "D"} and ev.n == len(problems)
    assert ev.correctness == sum(c == p.answer for p, c in zip(problems, ev.completions)) / len(problems)
