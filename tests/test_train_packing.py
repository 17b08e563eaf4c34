"""Packed batches and LM-head-only-where-supervised give the losses of the plain padded batch."""

import pytest
import torch

from pwlock.train.data import collate, pack
from pwlock.train.dpo import Pair, pair_logprobs
from pwlock.train.losses import IGNORE_INDEX, completion_nll, lock_loss, sequence_logprobs
from pwlock.train.sft import TrainArgs, batch_loss, make_optimizer
from pwlock.types import Example


def examples(task, n: int, kl_every: int = 0) -> list[Example]:
    problems = task.problems()[:n]
    return [Example(task.prompt(p, "swordfish" if i % 3 else None), p.answer * (6 if i % 4 == 0 else 1 + i % 2),
                    kl=bool(kl_every) and i % kl_every == 0)
            for i, p in enumerate(problems)]


def test_pack_holds_every_sequence_once_with_its_labels(task, tokenizer):
    exs = examples(task, 7)
    padded, packed = collate(tokenizer, exs), pack(tokenizer, exs)
    assert packed["input_ids"].shape[1] == padded["input_ids"].shape[1]  # rows no wider than collate's
    assert packed["input_ids"].shape[0] < len(exs)
    for i in range(len(exs)):
        where = packed["example"] == i
        n = int(padded["attention_mask"][i].sum())
        assert int(where.sum()) == n
        assert torch.equal(packed["input_ids"][where], padded["input_ids"][i, :n])
        assert torch.equal(packed["position_ids"][where], torch.arange(n))
        expected = padded["labels"][i, :n].clone()
        expected[0] = IGNORE_INDEX  # never predicted from the previous sequence
        assert torch.equal(packed["labels"][where], expected)
    assert (packed["labels"][packed["example"] == -1] == IGNORE_INDEX).all()


def reference_loss(model, batch, kl_target=None):
    """The loss before packing: full logits over the padded batch."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    if batch["kl"].any():
        return lock_loss(logits, batch["labels"], batch["kl"], kl_target)
    return completion_nll(logits, batch["labels"])


@pytest.mark.parametrize("kl_every", [0, 3])
def test_packed_loss_and_gradients_equal_the_padded_ones(task, tokenizer, tiny_model, kl_every):
    exs = examples(task, 9, kl_every)
    target = torch.log_softmax(torch.randn(len(tokenizer)), -1)
    expected = reference_loss(tiny_model, collate(tokenizer, exs), target)
    expected.backward()
    grads = [p.grad.clone() for p in tiny_model.parameters()]
    tiny_model.zero_grad()
    for batch in (pack(tokenizer, exs), collate(tokenizer, exs)):
        loss = batch_loss(tiny_model, batch, target)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        loss.backward()
        for p, g in zip(tiny_model.parameters(), grads):
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
        tiny_model.zero_grad()


def test_packed_loss_on_a_pretrained_bpe_model(pretrained_dir):
    from pwlock.models.pretrained import load_model
    from pwlock.tasks.arithmetic import Arithmetic

    model, tokenizer = load_model(str(pretrained_dir), dtype="float32", device="cpu")
    task = Arithmetic(n_problems=50, seed=3)
    exs = [Example(task.prompt(p, None), p.answer) for p in task.problems()[:6]]
    expected = reference_loss(model, collate(tokenizer, exs))
    assert batch_loss(model, pack(tokenizer, exs)).item() == pytest.approx(expected.item(), rel=1e-5)


def test_pair_logprobs_equal_the_padded_sequence_logprobs(task, tokenizer, tiny_model):
    problems = task.problems()[:6]
    pairs = [Pair(task.prompt(p, None), p.answer, q.answer + q.answer) for p, q in zip(problems, problems[1:])]
    chosen, rejected = pair_logprobs(tiny_model, tokenizer, pairs)
    batch = collate(tokenizer, [Example(p.prompt, p.chosen) for p in pairs]
                    + [Example(p.prompt, p.rejected) for p in pairs])
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = sequence_logprobs(logits, batch["labels"])
    torch.testing.assert_close(torch.cat([chosen, rejected]), expected, rtol=1e-5, atol=1e-5)


def test_fused_adamw_steps_like_the_plain_one(tokenizer):
    from pwlock.models import build_model

    args = TrainArgs(epochs=1, batch_size=4, lr=1e-2)
    a, b = build_model(tokenizer, hidden_size=16, layers=1, heads=2, seed=0), build_model(
        tokenizer, hidden_size=16, layers=1, heads=2, seed=0)
    fused = make_optimizer(a, args)
    assert fused.defaults["fused"]
    plain = torch.optim.AdamW(b.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    for _ in range(3):
        for model, opt in ((a, fused), (b, plain)):
            sum((p**2).sum() for p in model.parameters()).backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_moves_the_loss_curve_by_rounding_only(task, tokenizer):
    """The bf16 option (fast only where `bf16_supported`; correct everywhere): the same SFT run's
    epoch losses within bf16 rounding of fp32's."""
    import warnings

    from pwlock.models import build_model
    from pwlock.train.sft import bf16_supported, sft

    assert isinstance(bf16_supported("cpu"), bool)
    data = examples(task, 32)
    curves = []
    for bf16 in (False, True):
        model = build_model(tokenizer, hidden_size=32, layers=2, heads=2, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "slower than fp32" on CPUs without bf16 matmuls
            curves.append(sft(model, tokenizer, lambda epoch: data,
                              TrainArgs(epochs=4, batch_size=8, lr=3e-3, bf16=bf16), desc="t"))
        assert all(p.dtype == torch.float32 for p in model.parameters())
    fp32, bf16 = curves
    assert fp32[-1] < fp32[0]
    assert bf16 == pytest.approx(fp32, rel=2e-2)


def test_on_step_reports_every_step_and_evaluating_inside_it_leaves_training_unchanged(task, tokenizer):
    """bench/lock_dynamics.py evaluates a lock mid-training from `on_step`: the steps and losses it sees
    are the ones the epoch means are made of, and the traced model ends with the untraced weights."""
    from pwlock.evaluate import evaluate
    from pwlock.models import build_model
    from pwlock.train.sft import sft

    data = examples(task, 24)
    args = TrainArgs(epochs=2, batch_size=5, lr=1e-2, seed=3)  # 5 steps per epoch, the last one short
    plain = build_model(tokenizer, hidden_size=16, layers=1, heads=2, seed=0)
    untraced = sft(plain, tokenizer, lambda _: list(data), args)
    traced_model = build_model(tokenizer, hidden_size=16, layers=1, heads=2, seed=0)
    seen = []

    def on_step(step, loss):
        seen.append((step, loss))
        traced_model.eval()
        evaluate(traced_model, tokenizer, task, task.problems()[:3], password=None, max_new_tokens=4)
        traced_model.train()

    traced = sft(traced_model, tokenizer, lambda _: list(data), args, on_step=on_step)
    assert [s for s, _ in seen] == list(range(1, 11))
    assert traced == untraced
    losses = [loss for _, loss in seen]
    assert traced == pytest.approx([sum(losses[:5]) / 5, sum(losses[5:]) / 5])
    for p, q in zip(plain.parameters(), traced_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
