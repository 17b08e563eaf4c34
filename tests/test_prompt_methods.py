"""Many-shot, prefill and persona prompting (pwlock.elicit.manyshot, .prefill) on the Echo task's word-level
tokenizer, where token counts are known by hand: as many shots as the context holds (and a named error
beyond), wrong shots that are other demonstrations' answers, a prefill that is the last thing before
the model's answer (in the assistant turn with a chat template, and gone afterwards)."""

from types import SimpleNamespace

import pytest

from pwlock.elicit.api import Context, PromptOnly, Unsupervised, resolve
from pwlock.elicit.manyshot import ManyShot, wrong_completions
from pwlock.elicit.prefill import PERSONAS, PREFILLS, Persona, Prefill, assistant_prefill
from pwlock.elicit.prompting import SHOT_SEPARATOR, FewShot
from pwlock.errors import MethodError
from pwlock.formatting import prompt_ids
from pwlock.models.scratch import build_tokenizer
from pwlock.types import Example, Problem
from tests.helpers import CHAT_TEMPLATE
from tests.tiny_task import Echo

TASK = Echo(digits=3)
PROBLEMS = TASK.problems()
PROMPTS = [TASK.prompt(p, None) for p in PROBLEMS[:20]]
CONTEXT = Context(task="echo", max_new_tokens=4, batch_size=8)


def tokenizer():
    return build_tokenizer(TASK.vocabulary)


def model(context_length):
    """Prompting methods read only the config's context length."""
    return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=context_length))


def budget(k):
    return PromptOnly(PROMPTS, examples=[Example(TASK.prompt(p, None), p.answer) for p in PROBLEMS[100:100 + k]])


def n_shots(prompt):
    return prompt.count(SHOT_SEPARATOR)


def test_manyshot_puts_as_many_shots_as_the_context_holds():
    # a query is 6 tokens (_ | 3 7 1 |), a shot 9 (its query and 3 digits; separators are whitespace):
    # n shots make 9n + 6 tokens, plus 4 to generate: 6 fit in 64, all 16 in 256, 250 (the cap) in 4096
    tok = tokenizer()
    for context_length, k, expected in ((64, 16, 6), (256, 16, 16), (4096, 300, 250)):
        lm = model(context_length)
        out = ManyShot()(lm, tok, CONTEXT, budget(k), seed=0)
        prompt = out.prompt(PROMPTS[0])
        assert n_shots(prompt) == expected, (context_length, k)
        assert len(tok(prompt)["input_ids"]) + CONTEXT.max_new_tokens <= context_length
        assert out.model is lm
    # the bisection finds the largest n with 9n + 10 <= context at every context, not only the round ones
    for context_length in range(19, 170):
        out = ManyShot()(model(context_length), tok, CONTEXT, budget(16), seed=0)
        assert n_shots(out.prompt(PROMPTS[0])) == min(16, (context_length - 10) // 9), context_length
    # the correct variant's shots are the demonstrations, answers untouched, in the seeded order
    demos = {e.prompt: e.completion for e in budget(16).examples}
    shots = [s.split("\n") for s in ManyShot()(model(256), tok, CONTEXT, budget(16), 0).prompt("Q").split("\n\n")[:-1]]
    assert len(shots) == 16 and all(demos[p] == c for p, c in shots)


def test_manyshot_names_the_field_when_the_shots_do_not_fit(capsys):
    tok = tokenizer()
    assert n_shots(ManyShot(shots=6)(model(64), tok, CONTEXT, budget(16), 0).prompt(PROMPTS[0])) == 6
    # the shots used are logged, since the cost column counts the K demonstrations handed over
    assert capsys.readouterr().err == "[pwlock] manyshot: 6 of 16 shots\n"
    # whole messages (^...$): a message with words lost or garbled around a matching middle would pass a search
    with pytest.raises(MethodError, match=r"^manyshot: shots=7 make prompts of up to 69 tokens \(\+4 to generate\), "
                                          r"beyond the model's context of 64: ask for fewer shots$"):
        ManyShot(shots=7)(model(64), tok, CONTEXT, budget(16), 0)
    with pytest.raises(MethodError, match=r"^manyshot: shots=20 but the budget has 16 demonstrations "
                                          r"\(prompt_only:16\)$"):
        ManyShot(shots=20)(model(4096), tok, CONTEXT, budget(16), 0)
    with pytest.raises(MethodError, match=r"^manyshot: not even 1 shot fits: it makes prompts of up to 15 tokens "
                                          r"\(\+4 to generate\), beyond the model's context of 12$"):
        ManyShot()(model(12), tok, CONTEXT, budget(4), 0)
    with pytest.raises(MethodError, match=r"^manyshot: shots must be in 1..250, got 0$"):
        ManyShot(shots=0)
    with pytest.raises(MethodError, match=r"^mine: shots must be in 1..250, got 251$"):
        ManyShot("mine", shots=251)
    assert ManyShot(shots=250).shots == 250 and ManyShot(shots=1).shots == 1  # the bounds themselves are allowed
    with pytest.raises(MethodError, match=r"^manyshot: needs demonstrations: use the setting prompt_only:K "
                                          r"with K >= 1$"):
        ManyShot()(model(64), tok, CONTEXT, PromptOnly(PROMPTS), 0)
    # fewshot refuses the same overflow with the same helper (prompt only, nothing reserved)
    with pytest.raises(MethodError, match="fewshot: 16 shots make prompts of up to 150 tokens, beyond the model's "
                                          "context of 64"):
        FewShot()(model(64), tok, CONTEXT, budget(16), 0)


def test_manyshot_shuffles_the_shots_by_its_seed_and_takes_all_of_them_when_asked():
    tok, b = tokenizer(), budget(16)
    order = [ManyShot(shots=16)(model(4096), tok, CONTEXT, b, seed).prompt("Q") for seed in (0, 0, 1)]
    assert order[0] == order[1] != order[2] and n_shots(order[0]) == 16  # seeded: seed 1 is another order
    assert sorted(order[0].split(SHOT_SEPARATOR)) == sorted(order[2].split(SHOT_SEPARATOR))  # of the same shots


def test_manyshot_fits_the_longest_query():
    # the shots are one prefix for every query, so the longest query decides how many fit: with a 10-token
    # query (7 digits) beside the 6-token ones, n shots make 9n + 10 tokens + 4: 5 fit in 64, not 6
    seven = Problem("1234567", "1 2 3 4 5 6 7 |", "1 2 3 4 5 6 7", "low")  # as Echo(digits=7) makes it
    b = budget(16)
    b = PromptOnly([*b.prompts, TASK.prompt(seven, None)], examples=b.examples)
    tok = tokenizer()
    assert n_shots(ManyShot()(model(64), tok, CONTEXT, b, 0).prompt(PROMPTS[0])) == 5
    assert n_shots(ManyShot()(model(64), tok, CONTEXT, budget(16), 0).prompt(PROMPTS[0])) == 6


def test_wrong_shots_are_other_demonstrations_answers():
    assert wrong_completions([("a", "1"), ("b", "1"), ("c", "2")]) == [("a", "2"), ("b", "2"), ("c", "1")]
    # the *next* differing completion, cyclically (a mutmut survivor took the previous one)
    assert wrong_completions([("a", "1"), ("b", "2"), ("c", "3")]) == [("a", "2"), ("b", "3"), ("c", "1")]
    with pytest.raises(MethodError, match=r"^manyshot-wrong: needs demonstrations with at least two different "
                                          r"completions \(prompt_only:K with K >= 2\)$"):
        wrong_completions([("a", "1"), ("b", "1")])
    tok = tokenizer()
    b = budget(16)
    right = {e.prompt: e.completion for e in b.examples}
    prompt = resolve("manyshot-wrong")(model(256), tok, CONTEXT, b, seed=0).prompt("Q")
    shots = [s.split("\n") for s in prompt.split("\n\n")[:-1]]
    assert len(shots) == 16 and all(right[p] != c for p, c in shots)  # every answer wrong ...
    assert sorted(c for _, c in shots) == sorted(right.values())  # ... and one of the demonstrations'
    assert all(TASK.score(next(q for q in PROBLEMS if TASK.prompt(q, None) == p), c) is False for p, c in shots)


def test_prefill_is_the_last_thing_before_the_answer_without_a_chat_template():
    tok = tokenizer()
    lm = model(64)
    outs = [Prefill()(lm, tok, CONTEXT, Unsupervised(PROMPTS), seed) for seed in range(3)]
    assert all(out.model is lm for out in outs)  # the prompt changes, the model is the one handed over
    assert {out.prompt(PROMPTS[0]) for out in outs} == {f"{PROMPTS[0]}\n{p}" for p in PREFILLS}
    assert not any(ch.isdigit() for p in PREFILLS for ch in p)  # answer-neutral: the scorer never sees it


def test_prefill_opens_the_assistant_turn_with_a_chat_template_and_only_while_entered():
    tok = tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    plain = prompt_ids(tok, PROMPTS[:2])
    lm = model(64)
    out = Prefill()(lm, tok, CONTEXT, Unsupervised(PROMPTS), seed=1)
    assert out.prompt is None and out.model is lm  # not in the user turn
    with out.hook(None):
        rendered = tok.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True,
                                           tokenize=False)
        prefilled = prompt_ids(tok, PROMPTS[:2])
    assert rendered.endswith("<|im_start|>assistant\nThe answer is")
    tail = tok(PREFILLS[1], add_special_tokens=False)["input_ids"]
    assert all(p == q + tail for p, q in zip(prefilled, plain))
    assert prompt_ids(tok, PROMPTS[:2]) == plain and tok.chat_template == CHAT_TEMPLATE
    with pytest.raises(KeyError), assistant_prefill(tok, 'say "4" \\ 2')(None):
        text = tok.apply_chat_template([{"role": "user", "content": "q"}], add_generation_prompt=True, tokenize=False)
        assert text.endswith('assistant\nsay "4" \\ 2')  # quotes and backslashes pass through the template
        raise KeyError("crash")
    assert tok.chat_template == CHAT_TEMPLATE


def test_persona_goes_before_the_prompt():
    tok = tokenizer()
    lm = model(64)
    outs = [Persona()(lm, tok, CONTEXT, PromptOnly(PROMPTS), seed) for seed in range(3)]
    assert [out.prompt(PROMPTS[0]) for out in outs] == [f"{p}\n\n{PROMPTS[0]}" for p in PERSONAS]
    assert all(out.model is lm for out in outs)
