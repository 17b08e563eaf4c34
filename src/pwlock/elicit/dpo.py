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
import random
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.expert_iteration import Rewards, Trace
from pwlock.evaluate import Evaluation
from pwlock.generate import Generator, generate
from pwlock.tasks.base import Task
from pwlock.train import accel
from pwlock.train.dpo import Pair, batch_dpo_loss
from pwlock.train.sft import TrainArgs, make_optimizer
from pwlock.types import Problem


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
    task: Task,
    problems: Sequence[Problem],
    *,
    epochs: int,
    iterated: bool,
    beta: float,
    args: TrainArgs,
    rewards: Rewards,
    max_new_tokens: int,
    temperature: float,
    gen_batch_size: int,
    evaluate: Callable[[], Evaluation],
    seed: int,
    generator: Generator = generate,
) -> Trace:
    """Train `model` in place for `epochs` epochs (rounds, when iterated); evaluate after each."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    reference = frozen_copy(model)  # the locked model: plain DPO's sampler and reference throughout
    optimizer = make_optimizer(model, args)
    trained, optimizer = accel.prepare(model, optimizer)  # DDP/FSDP under `accelerate launch`
    prompts = [task.prompt(p, None) for p in problems]
    trace = [(0, evaluate())]
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
            mine, weight = accel.shard(pairs[start : start + args.batch_size])
            loss = batch_dpo_loss(trained, reference, tokenizer, mine, beta=beta) * weight
            accel.backward(loss)
            accel.clip(trained, args.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        model.eval()
        trace.append((2 * len(prompts) * (epoch + 1), evaluate()))
    accel.release()
    return trace
