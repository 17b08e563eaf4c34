"""SFT then RL (`demos:K+reward:S`): fine-tune on the K demonstrations, then run expert iteration
from the fine-tuned model on the reward. A few demonstrations move the locked model off pi_weak, so
its own samples hold more high-reward completions for expert iteration to keep: the combination that
recent work on sandbagging finds strongest (issue #16, method 4).

    pwlock stress-test sft_then_rl --suite demo --setting demos:16+reward:1280

Both stages use the built-ins' settings: the SFT stage is `sft`'s (AdamW, lr 3e-4, batch 32, the
middle of Appendix G.3's epoch counts for K), the RL stage `expert_iteration`'s (each round samples
10n = 640 prompts at temperature 1, keeps the best n = 64 by reward and fine-tunes one epoch on
them; as many rounds as S allows, so S below 640 is an error). Departures from the paper: it has
no such combined method; its RL section starts expert iteration from the locked model, not from a
fine-tuned one. `train_tokens` counts the SFT stage only (the RL stage's kept samples are not
returned by `expert_iteration`); its cost columns are the demos and the reward samples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import Budget, Context, DemosAndReward, Elicited
from pwlock.elicit.expert_iteration import ExpertIteration, expert_iteration
from pwlock.elicit.sft import SFT
from pwlock.errors import MethodError
from pwlock.train.data import n_tokens
from pwlock.train.sft import TrainArgs, sft


class SFTThenRL:
    """SFT on the K demonstrations, then expert iteration on the reward (`demos:K+reward:S`): `sft`'s settings, then as many
    rounds of 10n samples as S allows with `expert_iteration`'s."""

    name = "sft_then_rl"
    settings = ("demos+reward",)
    version = "1"  # the stages' settings live in SFT and ExpertIteration, outside this class's source
    sft_lr, sft_batch_size = SFT.lr, SFT.batch_size
    n, rl_lr, rl_batch_size = ExpertIteration.n, ExpertIteration.lr, ExpertIteration.batch_size
    temperature = ExpertIteration.temperature

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited:
        assert isinstance(budget, DemosAndReward)
        rounds = budget.samples // (10 * self.n)
        if rounds < 1:  # checked first: no training is wasted on a run that cannot finish
            raise MethodError(f"{self.name}: a round takes 10n={10 * self.n} samples; the budget has {budget.samples}")
        demos, epochs = budget.examples, SFT().epochs(len(budget.examples))
        sft(model, tokenizer, lambda _: demos,
            TrainArgs(epochs=epochs, batch_size=min(self.sft_batch_size, len(demos)), lr=self.sft_lr, seed=seed),
            desc=f"sft k={len(demos)}")

        rng = random.Random(f"candidates-{seed}")

        def candidates(prompts: Sequence[str], r: int) -> list[str]:
            return context.generate(model, tokenizer, prompts, temperature=self.temperature,
                                    seed=rng.randrange(2**31), max_new_tokens=context.max_new_tokens,
                                    batch_size=context.batch_size, desc=f"sample {r + 1}")

        args = TrainArgs(epochs=1, batch_size=self.rl_batch_size, lr=self.rl_lr, seed=seed)
        expert_iteration(model, tokenizer, str, budget.prompts, rounds=rounds, n=self.n, candidates=candidates,
                         rewards=budget.reward, args=args, evaluate=None, eval_every=rounds, seed=seed)
        return Elicited(model, train_tokens=epochs * n_tokens(tokenizer, demos))
