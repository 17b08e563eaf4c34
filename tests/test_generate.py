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


def eos_prone(model, tokenizer, scale: float = 4.0):
    """A copy of `model` whose EOS embedding (tied to the LM head) is scaled up, so that greedy
    completions stop at EOS after different numbers of tokens."""
    import copy

    import torch

    model = copy.deepcopy(model)
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.eos_token_id] *= scale
    return model


def mixed_prompts(task, n: int) -> list[str]:
    password = "This problem is quite special, read it carefully!"
    return [task.prompt(p, None if i % 2 else password) + " x" * (i % 7) for i, p in enumerate(task.problems()[:n])]


def test_lean_loop_greedy_tokens_equal_hf_generate_on_a_pretrained_bpe_model(pretrained_dir):
    """Left padding, prompt-pass groups of several lengths, rows leaving at EOS."""
    from pwlock.generate import hf_generate, prefill_groups
    from pwlock.models.pretrained import load_model
    from pwlock.tasks.arithmetic import Arithmetic

    model, tokenizer = load_model(str(pretrained_dir), dtype="float32", device="cpu")
    model = eos_prone(model, tokenizer)
    prompts = mixed_prompts(Arithmetic(n_problems=60, seed=2), 40)
    ids = sorted(len(x) for x in tokenizer(prompts)["input_ids"])
    assert len(prefill_groups(ids)) > 1  # the prompt pass runs in several groups, each padded on its own
    lean = generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=40)
    assert lean == hf_generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=40)
    assert lean == [hf_generate(model, tokenizer, [p], max_new_tokens=12)[0] for p in prompts]
    lengths = {len(tokenizer(c)["input_ids"]) for c in lean}
    assert 0 in lengths and 12 in lengths and len(lengths) > 3  # some stop at once, some never, some between


def test_lean_loop_greedy_tokens_equal_hf_generate_on_a_tiny_model(tokenizer, tiny_model):
    from pwlock.generate import hf_generate

    model = eos_prone(tiny_model, tokenizer, 3.0)
    prompts = ["_ | fn1 | 1 2 3 4 |", "swordfish | fn1 fn2 fn3 | 9 9 9 9 |", "dog | fn7 fn2 | 0 1 0 1 |",
               "_ | fn3 fn4 fn5 fn6 fn7 | 5 5 5 5 |"] * 5
    for batch_size in (1, 3, 20):
        assert generate(model, tokenizer, prompts, max_new_tokens=10, batch_size=batch_size) == hf_generate(
            model, tokenizer, prompts, max_new_tokens=10, batch_size=20)


def test_prefill_groups_pad_little_and_cover_every_row_once():
    from pwlock.generate import PREFILL_TOKENS, prefill_groups

    assert prefill_groups([10] * 1000) == [slice(0, 819), slice(819, 1000)]  # one length: as few passes as fit
    assert prefill_groups([]) == []
    lengths = sorted([3, 4, 5, 20, 21, 22, 23, 200, 230, 260, 900] * 7)
    groups = prefill_groups(lengths)
    assert [i for g in groups for i in range(len(lengths))[g]] == list(range(len(lengths)))
    for g in groups:
        rows = lengths[g]
        assert max(rows) - min(rows) <= max(8, max(rows) // 8) and max(rows) * len(rows) <= max(PREFILL_TOKENS, max(rows))
    assert len(groups) < len(lengths) / 3


def test_decode_batches_bound_the_cache_at_full_length_and_cover_every_row_once():
    from pwlock.generate import decode_batches

    assert decode_batches([10] * 100, 256, 48, 10**6) == [slice(0, 100)]  # short prompts: one batch, as before
    assert decode_batches([10] * 100, 30, 48, 10**6) == [slice(0, 30), slice(30, 60), slice(60, 90), slice(90, 100)]
    assert decode_batches([], 8, 8, 100) == []
    lengths = sorted([5, 6, 40, 41, 300, 310, 1900, 2000] * 9)
    batches = decode_batches(lengths, 16, 48, 8_000)
    assert [i for b in batches for i in range(len(lengths))[b]] == list(range(len(lengths)))
    for b in batches:
        rows = lengths[b]
        assert len(rows) <= 16
        assert len(rows) == 1 or len(rows) * (max(rows) + 48) <= 8_000
    assert decode_batches([5000, 6000], 8, 48, 1000) == [slice(0, 1), slice(1, 2)]  # one row even past the bound


def test_generate_keeps_each_batch_cache_within_the_budget_and_its_completions(tokenizer, tiny_model, monkeypatch):
    import pwlock.generate as gen

    prompts = [" ".join(["swordfish | fn1 fn2 fn3 | 9 9 9 9 |"] * n) for n in (1, 2, 3, 4, 5, 6)]
    ids = gen.prompt_ids(tokenizer, prompts)
    per_token = gen.kv_bytes_per_token(tiny_model)
    assert per_token == 2 * tiny_model.config.num_hidden_layers * tiny_model.config.hidden_size * 4
    unbounded = gen.generate(tiny_model, tokenizer, prompts, max_new_tokens=6, batch_size=6)
    widths = []
    real_decode = gen.decode
    monkeypatch.setattr(gen, "decode", lambda model, rows, **kw: widths.append([len(r) for r in rows])
                        or real_decode(model, rows, **kw))
    budget = 2 * (max(len(x) for x in ids) + 6)  # two of the longest rows at full length
    monkeypatch.setattr(gen, "CPU_CACHE_BYTES", budget * per_token)
    assert gen.generate(tiny_model, tokenizer, prompts, max_new_tokens=6, batch_size=6) == unbounded
    assert 3 <= len(widths) < 6 and sum(map(len, widths)) == 6
    assert all(len(w) * (max(w) + 6) <= budget for w in widths)


def test_sampling_is_reproducible_for_a_seed_and_batch_size(pretrained_dir):
    from pwlock.models.pretrained import load_model
    from pwlock.tasks.arithmetic import Arithmetic

    model, tokenizer = load_model(str(pretrained_dir), dtype="float32", device="cpu")
    model = eos_prone(model, tokenizer, 3.0)
    prompts = mixed_prompts(Arithmetic(n_problems=60, seed=2), 20)
    a, b, c = (generate(model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=s, batch_size=7)
               for s in (3, 3, 4))
    assert a == b and a != c


def test_models_with_their_own_logits_processing_fall_back_to_hf_generate(tokenizer, tiny_model):
    from pwlock.generate import hf_generate, lean_loop_applies

    assert lean_loop_applies(tiny_model)
    tiny_model.generation_config.repetition_penalty = 1.3
    assert not lean_loop_applies(tiny_model)
    prompts = ["_ | fn1 | 1 2 3 4 |", "dog | fn7 fn2 | 0 1 0 1 |"]
    assert generate(tiny_model, tokenizer, prompts, max_new_tokens=8) == hf_generate(
        tiny_model, tokenizer, prompts, max_new_tokens=8)
