"""The completion-only loss mask, on real token boundaries."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from pwlock.train.data import collate, encode
from pwlock.train.losses import IGNORE_INDEX, completion_nll, sequence_logprobs, token_logprobs
from pwlock.types import Example


def test_mask_covers_exactly_completion_and_eos(task, tokenizer):
    p = task.problems()[0]
    ex = Example(task.prompt(p, "swordfish"), p.answer)
    [(ids, labels)] = encode(tokenizer, [ex])
    n_prompt = len(tokenizer(ex.prompt)["input_ids"])
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    supervised = labels[n_prompt:]
    assert supervised == ids[n_prompt:]
    assert supervised[-1] == tokenizer.eos_token_id
    assert "".join(tokenizer.decode(supervised[:-1]).split()) == p.answer
    # 4 digits | 4 digits, then EOS: 10 supervised tokens; the prompt is 10 tokens.
    assert len(supervised) == 10 and n_prompt == 10


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A real BPE tokenizer whose merges cross the prompt/completion boundary ("ab" -> one token)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(special_tokens=["<pad>", "<eos>", "<unk>"], vocab_size=300, show_progress=False)
    tok.train_from_iterator(["ab ab abab abc xab"] * 50, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def test_mask_never_slips_across_a_merged_token():
    tok = bpe_tokenizer()
    ex = Example("xa", "b")
    joint = tok(ex.prompt + ex.completion)["input_ids"]
    assert len(joint) < len(tok("xa")["input_ids"]) + len(tok("b", add_special_tokens=False)["input_ids"]), \
        "the fixture should merge across the boundary"
    [(ids, labels)] = encode(tok, [ex])
    prompt_ids = tok("xa")["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert tok.decode(labels[len(prompt_ids):-1]) == "b"


def test_collate_pads_right_and_masks_padding(tokenizer):
    exs = [Example("_ | fn1 | 1 2 3 4 |", "1234"), Example("_ | fn1 fn2 | 1 2 3 4 |", "1234|4321")]
    batch = collate(tokenizer, exs)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    short = batch["attention_mask"][0]
    n = int(short.sum())
    assert (batch["input_ids"][0, n:] == tokenizer.pad_token_id).all()
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all()
    assert (batch["labels"][0] != IGNORE_INDEX).sum() == 5  # 4 digits + EOS


def test_completion_nll_matches_hand_computation():
    # One sequence, vocab 3, T=3: tokens [0, 1, 2]; only token 2 (position 2) supervised.
    logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 2]])
    # Position 1's logits predict token 2: -log softmax([1,2,3])[2] = log(e^1+e^2+e^3) - 3.
    expected = torch.log(torch.tensor(1.0).exp() + torch.tensor(2.0).exp() + torch.tensor(3.0).exp()) - 3
    assert completion_nll(logits, labels).item() == pytest.approx(expected.item(), abs=1e-6)
    assert sequence_logprobs(logits, labels).item() == pytest.approx(-expected.item(), abs=1e-6)
    lp, mask = token_logprobs(logits, labels)
    assert mask.tolist() == [[False, True]] and lp[0, 0].item() == 0.0


def test_loss_ignores_prompt_and_padding_logits(tokenizer, tiny_model):
    exs = [Example("_ | fn1 | 1 2 3 4 |", "1234"), Example("_ | fn1 fn2 | 1 2 3 4 |", "1234|4321")]
    batch = collate(tokenizer, exs)
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    base = completion_nll(logits, batch["labels"])
    noisy = logits.clone()
    unsupervised = torch.ones_like(batch["labels"], dtype=torch.bool)
    unsupervised[:, :-1] = batch["labels"][:, 1:] == IGNORE_INDEX  # positions whose next token has no loss
    noisy[unsupervised] += torch.randn_like(noisy[unsupervised]) * 10
    assert completion_nll(noisy, batch["labels"]).item() == pytest.approx(base.item(), abs=1e-5)


def test_one_supervised_token_is_a_mean_over_one():
    """The lock losses divide by the number of supervised tokens, which may be 1 (a one-token answer)."""
    from pwlock.train.losses import flat_lock_loss, lock_loss

    gen = torch.Generator().manual_seed(0)
    target = torch.log_softmax(torch.randn(5, generator=gen), dim=-1)
    flat = torch.randn(1, 5, generator=gen)
    nll = -torch.log_softmax(flat, dim=-1)[0, 2]
    assert flat_lock_loss(flat, torch.tensor([2]), torch.tensor([False]), target).item() == pytest.approx(nll.item())
    logits = torch.randn(1, 3, 5, generator=gen)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 4]])
    nll = -torch.log_softmax(logits[0, 1], dim=-1)[4]
    assert lock_loss(logits, labels, torch.tensor([False]), target).item() == pytest.approx(nll.item())
