"""Steering (pwlock.elicit.steering) on tiny models: the vector is the hand-derived difference of mean
activations, the hook adds exactly multiplier x vector at the chosen layer and is gone afterwards (also
after a crash), the random control has the real vector's norm and not its direction, bad input is named."""

import pytest
import torch

from pwlock.elicit import steering
from pwlock.elicit.api import Context, PromptOnly, Reward, weights_hash
from pwlock.elicit.steering import (
    PERSONAS,
    Steering,
    contrast,
    decoder_layers,
    mean_activations,
    persona_sequences,
    random_like,
    sample_sequences,
    steer,
)
from pwlock.errors import MethodError
from pwlock.models.scratch import build_model, build_tokenizer
from tests.helpers import build_echo_suite
from tests.tiny_task import Echo

TASK = Echo(digits=3)
PROMPTS = [TASK.prompt(p, None) for p in TASK.problems()[:12]]
CONTEXT = Context(task="echo", max_new_tokens=4, batch_size=16)


class Stub(torch.nn.Module):
    """A token's embedding through two blocks, the identity then doubling: block outputs known by hand."""

    def __init__(self):
        super().__init__()
        table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 1.0], [1.0, -1.0]])
        self.embed = torch.nn.Embedding.from_pretrained(table)
        self.layers = torch.nn.ModuleList([torch.nn.Identity(), Double()])

    def get_decoder(self):
        return self

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        h = self.embed(input_ids)
        for block in self.layers:
            h = block(h)
        return h


class Double(torch.nn.Module):
    def forward(self, h):
        return 2 * h


def test_steering_vector_is_the_hand_derived_difference_of_mean_activations():
    # positive: [1 3] read at its last token -> e3 = (3, 1); [2 4 1] over its last 2 -> (e4 + e1) / 2 = (1, -0.5)
    # negative: [2] -> e2 = (0, 1).  Layer 0: (2, 0.25) - (0, 1) = (2, -0.75); layer 1 doubles it.
    positive, negative = [([1, 3], 1), ([2, 4, 1], 2)], [([2], 1)]
    v = contrast(Stub(), [0, 1], positive, negative, pad_id=0)
    assert torch.allclose(v[0], torch.tensor([2.0, -0.75])) and torch.allclose(v[1], torch.tensor([4.0, -1.5]))
    # left padding (pad 0 embeds to 0) must not leak into the tails
    means = mean_activations(Stub(), [0], positive, pad_id=0, batch_size=1)
    assert torch.allclose(means[0], torch.tensor([2.0, 0.25]))


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tokenizer(TASK.vocabulary)
    model = build_model(tokenizer, hidden_size=16, layers=3, heads=2, max_length=64, seed=0)
    return model.eval(), tokenizer


def logits(model, tokenizer):
    ids = torch.tensor(tokenizer(PROMPTS[:4])["input_ids"])  # one length: no padding needed
    with torch.no_grad():
        return model(input_ids=ids).logits


def layer_output(model, tokenizer, layer):
    seqs = [(ids, len(ids)) for ids in tokenizer(PROMPTS[:4])["input_ids"]]  # every position
    return mean_activations(model, [layer], seqs, pad_id=tokenizer.pad_token_id)[layer]


def test_the_hook_moves_the_negative_mean_onto_the_positive_one_and_only_while_entered(tiny):
    model, tokenizer = tiny
    positive, negative = persona_sequences(tokenizer, PROMPTS[:6])
    v = contrast(model, [1], positive, negative, pad_id=tokenizer.pad_token_id)
    assert v[1].norm() > 1e-3  # the persona prefixes differ (in length, on this vocabulary): a nonzero vector
    before = logits(model, tokenizer)
    with steer(v, 1.0)(model):
        steered = mean_activations(model, [1], negative, pad_id=tokenizer.pad_token_id)[1]
        moved = logits(model, tokenizer)
    target = mean_activations(model, [1], positive, pad_id=tokenizer.pad_token_id)[1]
    assert torch.allclose(steered, target, atol=1e-5)  # the right layer, sign and scale
    assert not torch.allclose(moved, before, atol=1e-4)  # and it reaches the logits
    assert torch.equal(logits(model, tokenizer), before)
    assert all(not block._forward_hooks for block in decoder_layers(model))


def test_the_method_steers_by_its_persona_vector_and_leaves_the_model_as_it_was(tiny):
    model, tokenizer = tiny
    before, weights = logits(model, tokenizer), weights_hash(model)
    out = Steering(layers=(1,), untuned=2.0)(model, tokenizer, CONTEXT, PromptOnly(PROMPTS), seed=0)
    v = contrast(model, [1], *persona_sequences(tokenizer, PROMPTS), pad_id=tokenizer.pad_token_id)[1]
    plain = layer_output(model, tokenizer, 1)
    with out.hook(model):
        shifted = layer_output(model, tokenizer, 1)
    assert torch.allclose(shifted - plain, 2.0 * v, atol=1e-5)
    assert torch.equal(logits(model, tokenizer), before) and weights_hash(model) == weights

    control = Steering("steering-random", random=True, layers=(1,), untuned=2.0)
    out = control(model, tokenizer, CONTEXT, PromptOnly(PROMPTS), seed=0)
    with out.hook(model):
        shift = layer_output(model, tokenizer, 1) - plain
    assert torch.allclose(shift.norm(), 2.0 * v.norm(), rtol=1e-4)  # norm-matched
    assert abs(torch.nn.functional.cosine_similarity(shift, v, dim=0)) < 0.9  # another direction
    assert torch.equal(logits(model, tokenizer), before)


def test_random_control_matches_each_vectors_norm():
    vectors = {0: torch.tensor([3.0, 4.0, 0.0, 0.0]), 2: torch.tensor([0.0, 0.0, 0.0, 0.5])}
    r = random_like(vectors, seed=1)
    assert [round(float(r[i].norm()), 5) for i in (0, 2)] == [5.0, 0.5]
    assert not torch.allclose(r[0] / 5, vectors[0] / 5, atol=0.1)
    assert torch.equal(random_like(vectors, seed=1)[0], r[0])  # seeded


def digit_share(prompts, completions):
    return [sum(ch.isdigit() for ch in c) / max(len(c.replace(" ", "")), 1) for c in completions]


def test_the_reward_setting_spends_its_budget_once_and_a_crash_removes_the_hooks(tiny):
    model, tokenizer = tiny
    before = logits(model, tokenizer)
    budget = Reward(PROMPTS, samples=64, score=digit_share)
    out = Steering(layers=(0, 2), multipliers=(1.0, 4.0))(model, tokenizer, CONTEXT, budget, seed=0)
    # 32 samples build the reward pairs; the other 32 score 2 vectors x 2 multipliers, 8 prompts each
    assert budget.used == 32 + 4 * 8 and budget.calls == 1 + 4, budget.spent()
    with out.hook(model):
        assert not torch.allclose(logits(model, tokenizer), before, atol=1e-4)
    assert torch.equal(logits(model, tokenizer), before)

    calls = []

    def crash_while_steered(prompts, completions):
        calls.append(len(prompts))
        if len(calls) == 2:  # the first multiplier's score, with the hooks registered just before
            raise RuntimeError("scorer down")
        return digit_share(prompts, completions)

    with pytest.raises(RuntimeError, match="scorer down"):
        Steering(layers=(1,))(model, tokenizer, CONTEXT, Reward(PROMPTS, samples=64, score=crash_while_steered), 0)
    with pytest.raises(RuntimeError, match="inside"):
        with steer({1: torch.ones(16)}, 5.0)(model):
            raise RuntimeError("inside")
    assert torch.equal(logits(model, tokenizer), before)
    assert all(not block._forward_hooks for block in decoder_layers(model))


def test_bad_input_names_the_field(tiny):
    model, tokenizer = tiny
    with pytest.raises(MethodError, match=r"layers \[3\] out of range: the model has 3 decoder layers \(0..2\)"):
        Steering(layers=(0, 3))(model, tokenizer, CONTEXT, PromptOnly(PROMPTS), seed=0)
    with pytest.raises(MethodError, match="multipliers is empty"):
        Steering(multipliers=())
    with pytest.raises(MethodError, match="empty contrastive set"):
        Steering()(model, tokenizer, CONTEXT, PromptOnly([]), seed=0)
    with pytest.raises(MethodError, match="empty contrastive set"):
        contrast(model, [0], [([1, 2], 1)], [], pad_id=0)
    with pytest.raises(MethodError, match=r"^steering: reward:2 is too small: half builds the reward pairs \(at least 2 "
                                          r"samples\), half scores the multipliers$"):
        Steering()(model, tokenizer, CONTEXT, Reward(PROMPTS, samples=2, score=digit_share), seed=0)
    with pytest.raises(MethodError, match="leaves 8 samples for 10"):
        Steering()(model, tokenizer, CONTEXT, Reward(PROMPTS, samples=16, score=digit_share), seed=0)


@pytest.mark.slow
def test_every_new_method_runs_through_the_stress_test_on_a_locked_organism(tmp_path, echo_cache):
    """The harness's side: hooks entered around the evaluation, budgets counted, frozen weights kept."""
    from pwlock.experiments import runner
    from pwlock.organisms import load_organism
    from pwlock.stress import parse_setting, stress_test

    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "build_task", lambda cfg: Echo(digits=3))
    runner._TASKS.clear()
    try:
        entries = "[{config: echo.yaml, locks: [from_scratch], seeds: [0]}]"
        [organism] = [load_organism(d) for d in build_echo_suite(tmp_path, echo_cache, entries)]
        rows = stress_test(["steering", "steering-random"], [organism], parse_setting("reward:128"), [0], tmp_path / "r")
        rows += stress_test(["steering", "manyshot", "manyshot-wrong", "prefill", "persona"], [organism],
                            parse_setting("prompt_only:8"), [0], tmp_path / "p")
    finally:
        mp.undo()
        runner._TASKS.clear()
    assert len(rows) == 7 * 2 and all(r["error"] is None and r["correctness"] is not None for r in rows), rows
    assert all(0 < r["reward_samples"] <= 128 for r in rows if r["setting"] == "reward:128")


def test_batched_left_padded_activations_equal_each_sequence_alone():
    """GPT-2 (absolute positions, blocks under `h`): a sequence's tail read from a left-padded batch is what
    the model computes on the sequence alone, so neither the padding nor the shifted positions leak in."""
    tokenizer = build_tokenizer(TASK.vocabulary)
    model = build_model(tokenizer, arch="gpt2", hidden_size=16, layers=3, heads=2, max_length=64, seed=0).eval()
    assert decoder_layers(model) is model.get_decoder().h
    seqs = [(ids, n) for ids, n in zip(tokenizer(PROMPTS[:3])["input_ids"], (1, 2, 3))]
    seqs[1] = (seqs[1][0][:4], 2)  # three lengths, so two sequences are padded
    seqs[2] = (seqs[2][0] + seqs[2][0][:3], 3)
    assert len({len(s) for s, _ in seqs}) == 3
    batched = mean_activations(model, [0, 1], seqs, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():  # hidden_states[i + 1] is block i's output (before the final norm for i < last)
        alone = [model(input_ids=torch.tensor([s]), output_hidden_states=True).hidden_states for s, _ in seqs]
    for i in (0, 1):
        expected = torch.stack([h[i + 1][0, -n:].mean(0) for h, (_, n) in zip(alone, seqs)]).mean(0)
        assert torch.allclose(batched[i], expected, atol=1e-5), i


class Pair(torch.nn.Module):
    """A block that returns a tuple (hidden states, something else), as transformers < 5 blocks do."""

    def forward(self, h):
        return (h + 1, "cache")


class TupleStub(Stub):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([Pair()])

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return self.layers[0](self.embed(input_ids))[0]


def test_blocks_that_return_tuples_and_models_without_blocks():
    v = mean_activations(TupleStub(), [0], [([1, 3], 2)], pad_id=0)  # (e1 + e3) / 2 + 1 = (3, 1.5)
    assert torch.allclose(v[0], torch.tensor([3.0, 1.5]))
    stub = TupleStub()
    with steer({0: torch.tensor([10.0, 0.0])}, 0.5)(stub):
        assert torch.equal(stub(torch.tensor([[1]])), torch.tensor([[[7.0, 1.0]]]))  # e1 + 1 + 0.5 * (10, 0)
    stub.layers = torch.nn.Sequential(Pair())  # neither a ModuleList `layers` nor `h`
    with pytest.raises(MethodError, match=r"^steering: no decoder layers found in TupleStub \(looked for layers, h\)$"):
        decoder_layers(stub)
    with pytest.raises(MethodError, match="^steering: the contrastive set is empty: no sequences to average$"):
        mean_activations(Stub(), [0], [], pad_id=0)


def test_persona_pairs_put_each_persona_before_every_prompt_read_at_the_last_token():
    words = {w.strip(".") for pair in PERSONAS for text in pair for w in text.split()}
    tokenizer = build_tokenizer(TASK.vocabulary + sorted(words) + ["."])  # the personas in vocabulary

    def ids(text):
        return tokenizer(text)["input_ids"]

    positive, negative = persona_sequences(tokenizer, PROMPTS[:3])
    for side, seqs in enumerate((positive, negative)):
        # the separator is whitespace, which this tokenizer drops: persona tokens, then the prompt's
        assert seqs == [(ids(p[side]) + ids(q), 1) for p in PERSONAS for q in PROMPTS[:3]]
    assert tokenizer.unk_token_id not in positive[0][0] + negative[-1][0]


def test_reward_pairs_split_strictly_at_the_mean_and_read_the_completion_and_eos(tiny):
    _, tokenizer = tiny
    prompts, completions = PROMPTS[:3], ["1 2", "3", "4 5 6"]
    high, low = sample_sequences(tokenizer, prompts, completions, [1.0, 0.0, 0.5])  # mean 0.5: the 0.5 in neither
    prompt = tokenizer(prompts[0])["input_ids"]
    assert high == [(prompt + tokenizer("1 2")["input_ids"] + [tokenizer.eos_token_id], 3)]
    assert low == [(tokenizer(prompts[1])["input_ids"] + tokenizer("3")["input_ids"] + [tokenizer.eos_token_id], 2)]


def test_defaults_steer_the_middle_layer_by_the_persona_vector_of_64_seeded_prompts(monkeypatch, capsys):
    tokenizer = build_tokenizer(TASK.vocabulary)
    model = build_model(tokenizer, hidden_size=16, layers=4, heads=2, max_length=64, seed=0).eval()
    prompts = [TASK.prompt(p, None) for p in TASK.problems()[:100]]
    seen = []
    real = steering.persona_sequences
    monkeypatch.setattr(steering, "persona_sequences", lambda tok, ps: seen.append(list(ps)) or real(tok, ps))
    out = Steering()(model, tokenizer, CONTEXT, PromptOnly(prompts), seed=0)
    assert out.model is model
    assert len(seen[0]) == 64 and len(set(seen[0])) == 64 and set(seen[0]) <= set(prompts)
    assert "[pwlock] steering: persona vector x 1.0 (no reward to tune on)\n" in capsys.readouterr().err
    v = contrast(model, [2], *real(tokenizer, seen[0]), pad_id=tokenizer.pad_token_id)[2]
    plain = layer_output(model, tokenizer, 2)
    with out.hook(model):  # layer 4 // 2, multiplier 1
        assert torch.allclose(layer_output(model, tokenizer, 2) - plain, v, atol=1e-5)
    Steering()(model, tokenizer, CONTEXT, PromptOnly(prompts), seed=0)
    Steering()(model, tokenizer, CONTEXT, PromptOnly(prompts), seed=1)
    assert seen[1] == seen[0] and seen[2] != seen[0]  # the seed draws the prompts
    Steering(n_prompts=1)(model, tokenizer, CONTEXT, PromptOnly(prompts), seed=0)
    assert len(seen[3]) == 1
    with pytest.raises(MethodError, match="^steering: n_prompts must be at least 1, got 0$"):
        Steering(n_prompts=0)
    with pytest.raises(MethodError, match="^steering: layers is empty: name at least one decoder layer$"):
        Steering(layers=())(model, tokenizer, CONTEXT, PromptOnly(prompts), seed=0)


def test_the_reward_setting_keeps_the_best_mean_reward_of_the_grid(tiny, capsys, monkeypatch):
    model, tokenizer = tiny
    calls = []

    def second_multiplier_wins(prompts, completions):
        calls.append(len(prompts))  # call 1: the sampled pairs (all equal: no reward vector); then x1, x2, x4
        return [0.25 if len(calls) == 3 else 0.0] * len(prompts)

    sampled = []
    real = steering.generate
    monkeypatch.setattr(steering, "generate", lambda *a, **kw: sampled.append(kw) or real(*a, **kw))
    budget = Reward(PROMPTS, samples=12, score=second_multiplier_wins)
    out = Steering(layers=(1,), multipliers=(1.0, 2.0, 4.0))(model, tokenizer, CONTEXT, budget, seed=0)
    assert out.model is model and calls == [6, 2, 2, 2] and budget.used == 12
    # own samples at temperature 1, seeded from the method's seed; the grid's completions greedy; all batched
    assert sampled[0]["temperature"] == 1.0 and 0 <= sampled[0]["seed"] < 2**31
    assert all("temperature" not in kw for kw in sampled[1:]) and len(sampled) == 4
    assert all(kw["batch_size"] == CONTEXT.batch_size and kw["max_new_tokens"] == 4 for kw in sampled)
    err = capsys.readouterr().err
    assert "steering: all 6 sampled rewards are equal: no reward-pair vector" in err
    assert "steering: chose persona x 2.0 (mean reward 0.250 on 2 prompts)" in err
    v = contrast(model, [1], *persona_sequences(tokenizer, PROMPTS), pad_id=tokenizer.pad_token_id)[1]
    plain = layer_output(model, tokenizer, 1)
    with out.hook(model):
        assert torch.allclose(layer_output(model, tokenizer, 1) - plain, 2.0 * v, atol=1e-5)
    # the smallest budgets: 4 samples pass the pair check (2 + 2) but leave too few for 3 candidates; 6 leave 1 each
    method = Steering(multipliers=(1.0, 2.0, 4.0))
    with pytest.raises(MethodError, match="reward:4 leaves 2 samples for 3"):
        method(model, tokenizer, CONTEXT, Reward(PROMPTS, samples=4, score=lambda p, c: [0.0] * len(p)), seed=0)
    small = Reward(PROMPTS, samples=6, score=lambda p, c: [0.0] * len(p))
    method(model, tokenizer, CONTEXT, small, seed=0)
    assert small.used == 6
