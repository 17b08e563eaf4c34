"""classify: argmax over the letters' next-token logits, batched with either padding side."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from pwlock.classify import choice_logits, choice_token_ids, classify
from pwlock.models import build_model, build_tokenizer

LETTERS = ("A", "B", "C", "D")
WORDS = ["What", "is", "the", "answer", "Answer", ":", "?", "blue", "red", "sky", "cat", "pw", ".", *LETTERS]
# different lengths (padding) and different last tokens (so a random model's answers vary)
PROMPTS = [
    "What is the answer ? A . blue B . red C . sky D . cat Answer :",
    "pw the sky is blue ?",
    "cat",
    "What is red ? A . red B . blue C . cat D . sky pw",
    "Answer : red",
    "the the the cat is the sky ? A . blue B . red Answer : sky",
    "blue sky .",
]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(WORDS)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request, tok):
    return build_model(tok, arch=request.param, hidden_size=32, layers=2, heads=2, seed=1)


def alone(model, tok, prompt: str) -> torch.Tensor:
    """Reference: the letters' logits for one unpadded prompt, by a plain forward pass."""
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    return logits[[tok.convert_tokens_to_ids(c) for c in LETTERS]]


def test_picks_argmax_letter(model, tok):
    got = classify(model, tok, PROMPTS, LETTERS, batch_size=len(PROMPTS))
    want = [LETTERS[int(alone(model, tok, p).argmax())] for p in PROMPTS]
    assert got == want
    assert len(set(got)) > 1  # a random model does not answer one letter for everything here


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_matches_one_at_a_time(model, tok, side):
    tok.padding_side = side
    try:
        batched = choice_logits(model, tok, PROMPTS, LETTERS, batch_size=4)
        single = torch.cat([choice_logits(model, tok, [p], LETTERS, batch_size=1) for p in PROMPTS])
    finally:
        tok.padding_side = "right"
    assert torch.allclose(batched, single, atol=1e-4)
    reference = torch.stack([alone(model, tok, p) for p in PROMPTS])
    assert torch.allclose(batched, reference, atol=1e-4)


@pytest.mark.parametrize("letter", ["C", "A"])
def test_bias_toward_a_letter_wins(model, tok, letter):
    column = tok.convert_tokens_to_ids(letter)

    def push(module, inputs, output):
        output = output.clone()
        output[..., column] += 100.0
        return output

    handle = model.get_output_embeddings().register_forward_hook(push)
    try:
        assert classify(model, tok, PROMPTS, LETTERS, batch_size=3) == [letter] * len(PROMPTS)
    finally:
        handle.remove()


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer where "A" and " A" are different tokens, as in GPT-2-style BPE."""
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, "Answer": 3, ":": 4, "Ġ": 5}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab["Ġ" + c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def test_letter_forms():
    tok = byte_level_tokenizer()
    bare = [tok.convert_tokens_to_ids(c) for c in LETTERS]
    spaced = [tok.convert_tokens_to_ids("Ġ" + c) for c in LETTERS]
    assert bare != spaced
    assert choice_token_ids(tok, LETTERS) == bare  # how pwlock tokenizes the completion "C"
    assert choice_token_ids(tok, LETTERS, "space") == spaced  # "Answer: C" in running text
    with pytest.raises(ValueError, match="not one known token"):
        choice_token_ids(tok, ["E"])  # unknown -> <unk>
    with pytest.raises(ValueError, match="not one known token"):
        choice_token_ids(tok, ["AB"])  # two tokens


def test_form_selects_the_logits_it_reads():
    tok = byte_level_tokenizer()
    model = build_model(tok, hidden_size=32, layers=2, heads=2, seed=0)
    spaced_b, bare_a = tok.convert_tokens_to_ids("ĠB"), tok.convert_tokens_to_ids("A")

    def push(module, inputs, output):  # " B" wins among spaced letters, "A" among bare ones
        output = output.clone()
        output[..., spaced_b] += 100.0
        output[..., bare_a] += 50.0
        return output

    handle = model.get_output_embeddings().register_forward_hook(push)
    try:
        prompts = ["Answer:", "Answer: A Answer:"]
        assert classify(model, tok, prompts, LETTERS, form="space") == ["B", "B"]
        assert classify(model, tok, prompts, LETTERS, form="completion") == ["A", "A"]
    finally:
        handle.remove()
