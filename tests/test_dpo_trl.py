"""Our DPO loss against TRL's, through TRL's own tokenization, collator and loss code.

TRL tokenizes `prompt + chosen + eos_token` as one string and takes the completion to
start where that diverges from the tokenized prompt; we tokenize prompt and completion
separately and append the EOS id. With the word-level tokenizer and the task's prompts
(which end on `|`) both give the same ids, and the test asserts that before comparing
losses. (With a prompt ending in an identifier and a completion starting with one, TRL's
string concatenation would merge the two words; that is a difference in tokenization,
not in the loss, and is why the ids are checked first.)

DPOConfig defaults to bf16=True; accelerate then wraps the reference model's forward in
bf16 autocast (even on CPU), which moves reference log-probs by ~0.02 nats on this model.
The test turns it off so both sides run fp32.

TRL has no per-pair weights, so the weighted loss is checked against TRL's loss on each
pair alone, weighted and averaged by hand.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from pwlock.models import build_model
from pwlock.train.data import collate
from pwlock.train.dpo import Pair, batch_dpo_loss, dpo_loss, pair_logprobs
from pwlock.train.losses import IGNORE_INDEX
from pwlock.types import Example

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
# transformers' deprecation notices, raised from inside TRL's trainer
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

BETA = 0.1
N_PAIRS = 6


def make_pairs(task) -> list[Pair]:
    """Chosen: the right answer; rejected: a truncated answer, so lengths (and padding) differ."""
    problems = task.problems()[:N_PAIRS]
    return [
        Pair(task.prompt(p, None), p.answer, p.answer[: 4 + i % 3], weight=0.5 + 0.25 * i)
        for i, p in enumerate(problems)
    ]


def policy_and_reference(tokenizer):
    policy = build_model(tokenizer, hidden_size=32, layers=2, heads=2, seed=0)
    reference = copy.deepcopy(policy)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # policy != reference, so the margins are not 0 and the loss is not log 2
        for p in reference.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    reference.requires_grad_(False)
    return policy, reference


def trl_trainer(policy, reference, tokenizer, pairs, tmp_path):
    """A DPOTrainer on deep copies (TRL patches the models' forward with its fused LM head)."""
    dataset = datasets.Dataset.from_dict(
        {"prompt": [p.prompt for p in pairs], "chosen": [p.chosen for p in pairs],
         "rejected": [p.rejected for p in pairs]}
    )
    config = trl.DPOConfig(
        beta=BETA, loss_type=["sigmoid"], output_dir=str(tmp_path), report_to=[], use_cpu=True,
        max_length=None, per_device_train_batch_size=len(pairs), disable_tqdm=True, save_strategy="no",
        bf16=False,  # TRL defaults to bf16, which autocasts its reference forward even on CPU; we run fp32
    )
    return trl.DPOTrainer(
        model=copy.deepcopy(policy), ref_model=copy.deepcopy(reference), args=config,
        train_dataset=dataset, processing_class=tokenizer,
    )


def trl_batch(trainer, rows: list[int]) -> dict[str, torch.Tensor]:
    """TRL's collated batch for these dataset rows, in order ([chosen..., rejected...])."""
    return trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in rows]))


def our_batch(tokenizer, pairs):
    examples = [Example(p.prompt, p.chosen) for p in pairs] + [Example(p.prompt, p.rejected) for p in pairs]
    return collate(tokenizer, examples)


def test_dpo_loss_matches_trl(task, tokenizer, tmp_path):
    pairs = make_pairs(task)
    policy, reference = policy_and_reference(tokenizer)
    trainer = trl_trainer(policy, reference, tokenizer, pairs, tmp_path)
    batch = trl_batch(trainer, list(range(len(pairs))))

    # Same token ids, same padding, same supervised positions (completion + EOS).
    ours = our_batch(tokenizer, pairs)
    assert torch.equal(ours["input_ids"], batch["input_ids"])
    assert torch.equal(ours["attention_mask"], batch["attention_mask"])
    assert torch.equal(ours["labels"] != IGNORE_INDEX, batch["completion_mask"].bool())
    assert (ours["labels"] != IGNORE_INDEX).sum(1).min() > 1  # every completion has tokens besides EOS

    # Our loss, with its gradient, on the untouched models.
    with torch.no_grad():
        ref_chosen, ref_rejected = pair_logprobs(reference, tokenizer, pairs)
    chosen, rejected = pair_logprobs(policy, tokenizer, pairs)
    loss = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=BETA)
    loss.backward()

    trl_loss = trainer.compute_loss(trainer.model, batch)
    trl_loss.backward()

    assert abs(trl_loss.item() - math.log(2)) > 1e-3, "policy == reference would make the comparison vacuous"
    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-5, rel=1e-5)
    # Same objective means the same gradient, parameter by parameter.
    trl_params = dict(trainer.model.named_parameters())
    for name, p in policy.named_parameters():
        torch.testing.assert_close(p.grad, trl_params[name].grad, atol=1e-6, rtol=1e-4, msg=name)

    # The comparison can fail: a different beta moves our loss well outside the tolerance.
    wrong = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=2 * BETA)
    assert abs(wrong.item() - trl_loss.item()) > 1e-4


def test_weighted_dpo_loss_matches_trl_per_pair(task, tokenizer, tmp_path):
    """Eq. 2's weights: mean_i w_i * L_i, with each L_i from TRL on pair i alone."""
    pairs = make_pairs(task)
    policy, reference = policy_and_reference(tokenizer)
    trainer = trl_trainer(policy, reference, tokenizer, pairs, tmp_path)
    with torch.no_grad():
        per_pair = torch.stack([trainer.compute_loss(trainer.model, trl_batch(trainer, [i])) for i in range(len(pairs))])
        ref_chosen, ref_rejected = pair_logprobs(reference, tokenizer, pairs)
        chosen, rejected = pair_logprobs(policy, tokenizer, pairs)
    weights = torch.tensor([p.weight for p in pairs])
    loss = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=BETA, weights=weights)
    assert loss.item() == pytest.approx((weights * per_pair).mean().item(), abs=1e-5, rel=1e-5)
    assert per_pair.mean().item() != pytest.approx(loss.item(), abs=1e-4)  # the weights matter here


def test_batch_dpo_loss_weights_each_pair(task, tokenizer):
    """What DPO elicitation trains on: the pairs' own weights reach the loss (reward-weighted DPO, Eq. 2)."""
    policy, reference = policy_and_reference(tokenizer)
    pairs = make_pairs(task)
    with torch.no_grad():
        chosen, rejected = pair_logprobs(policy, tokenizer, pairs)
        ref_chosen, ref_rejected = pair_logprobs(reference, tokenizer, pairs)
        loss = batch_dpo_loss(policy, reference, tokenizer, pairs, beta=BETA)
        per_pair = -torch.nn.functional.logsigmoid(BETA * ((chosen - ref_chosen) - (rejected - ref_rejected)))
    weights = torch.tensor([p.weight for p in pairs])
    assert loss.item() == pytest.approx((weights * per_pair).mean().item(), rel=1e-5)
    assert loss.item() != pytest.approx(per_pair.mean().item(), rel=1e-3)  # the weights matter here
