"""DPO and iterated DPO (section 6.1; reward-weighted variant: Eq. 2, Appendix B.3.2).

DPO: every epoch, sample 2 completions per problem (no password, temperature 1) from the
locked model, pair them where their rewards differ (the higher one chosen), and train one
epoch of DPO against the locked model as the fixed reference.

Iterated DPO: rounds of the same, but each round samples from the current model and uses
the model at the start of the round as the reference.

Each pair's loss is weighted by R(y+) - R(y-): 1 with binary correctness, the reward gap
with a continuous reward (Eq. 2).
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import Budget, Context, Elicited, Reward
from pwlock.elicit.expert_iteration import Rewards, Trace
from pwlock.errors import MethodError
from pwlock.evaluate import Evaluation
from pwlock.experiments.schedule import use_idle_cores
from pwlock.generate import Generator, generate
from pwlock.train import accel
from pwlock.train.dpo import Pair, batch_dpo_loss
from pwlock.train.sft import TrainArgs, make_optimizer


def make_pairs(prompts: Sequence[str], a: Sequence[str], b: Sequence[str],
               ra: Sequence[float], rb: Sequence[float]) -> list[Pair]:
    """One pair per prompt whose two completions got different rewards; ties carry no signal."""
    pairs = []
    for prompt, ya, yb, ra_, rb_ in zip(prompts, a, b, ra, rb):
        if ra_ > rb_:
            pairs.append(Pair(prompt, ya, yb, ra_ - rb_))
        elif rb_ > ra_:
            pairs.append(Pair(prompt, yb, ya, rb_ - ra_))
    return pairs


def frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


def dpo(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: Callable[[Any], str],
    problems: Sequence[Any],
    *,
    epochs: int,
    iterated: bool,
    beta: float,
    args: TrainArgs,
    rewards: Rewards,
    max_new_tokens: int,
    temperature: float,
    gen_batch_size: int,
    evaluate: Callable[[], Evaluation] | None,
    seed: int,
    generator: Generator = generate,
) -> Trace:
    """Train `model` in place for `epochs` epochs (rounds, when iterated); evaluate after each
    (`evaluate` None: an empty trace). `prompt(problem)` gives a problem's prompt without password."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    reference = frozen_copy(model)  # the locked model: plain DPO's sampler and reference throughout
    optimizer = make_optimizer(model, args)
    trained, optimizer = accel.prepare(model, optimizer)  # DDP/FSDP under `accelerate launch`
    prompts = [prompt(p) for p in problems]
    trace = [] if evaluate is None else [(0, evaluate())]
    for epoch in range(epochs):
        if iterated and epoch > 0:
            reference = frozen_copy(model)  # the model at the start of this round
        both = generator(reference, tokenizer, prompts + prompts, max_new_tokens=max_new_tokens,
                        batch_size=gen_batch_size, temperature=temperature, seed=rng.randrange(2**31),
                        desc=f"sample {epoch + 1}")
        a, b = both[: len(prompts)], both[len(prompts) :]
        pairs = make_pairs(prompts, a, b, rewards(problems, a), rewards(problems, b))
        rng.shuffle(pairs)
        model.train()
        for start in tqdm(range(0, len(pairs), args.batch_size), desc=f"dpo {epoch + 1}", leave=False):
            use_idle_cores()
            mine, weight = accel.shard(pairs[start : start + args.batch_size])
            loss = batch_dpo_loss(trained, reference, tokenizer, mine, beta=beta) * weight
            accel.backward(loss)
            accel.clip(trained, args.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        model.eval()
        if evaluate is not None:
            trace.append((2 * len(prompts) * (epoch + 1), evaluate()))
    accel.release()
    return trace


class IteratedDPO:
    """Iterated DPO on pairs of own samples ranked by the reward (`reward:S`): rounds of 2 samples on each of `problems` prompts
    (drawn once, seeded), as many as S allows; beta 0.1, and half the organism's learning rate (`Context.training`:
    the middle of Appendix G.3's lr, lr/2, lr/4; 1.5e-4 on the toy organisms)."""

    name = "iterated_dpo"
    settings = ("reward",)
    problems, beta, temperature = 320, 0.1, 1.0

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited:
        assert isinstance(budget, Reward)
        n = min(self.problems, len(budget.prompts))
        rounds = budget.samples // (2 * n)
        if rounds < 1:
            raise MethodError(f"iterated_dpo: a round takes 2 x {n} samples; the budget has {budget.samples}")
        prompts = random.Random(seed).sample(budget.prompts, n)
        args = dataclasses.replace(context.training.args(1, n, seed), lr=context.training.lr / 2)
        dpo(model, tokenizer, str, prompts, epochs=rounds, iterated=True, beta=self.beta, args=args,
            rewards=budget.reward, max_new_tokens=context.max_new_tokens, temperature=self.temperature,
            gen_batch_size=context.batch_size, evaluate=None, seed=seed, generator=context.generate)
        return Elicited(model)
