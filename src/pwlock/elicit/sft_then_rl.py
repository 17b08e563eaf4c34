"""SFT then RL (`demos:K+reward:S`): fine-tune on the K demonstrations, then run expert iteration
from the fine-tuned model on the reward. A few demonstrations move the locked model off pi_weak, so
its own samples hold more high-reward completions for expert iteration to keep: the combination that
recent work on sandbagging finds strongest (issue #16, method 4).

    pwlock stress-test sft_then_rl --suite demo --setting demos:16+reward:1280

Both stages are the built-ins, at the organism's fine-tuning settings (`Context.training`): the SFT
stage is `sft` (the middle of the epoch counts for K), the RL stage `expert_iteration` (each round
samples 10n = 640 prompts at temperature 1, keeps the best n = 64 by reward and fine-tunes one epoch
on them; as many rounds as S allows, so S below 640 is an error; a split of fewer than 640 problems
gets a smaller n, as `expert_iteration` says). Departures from the paper: it has
no such combined method; its RL section starts expert iteration from the locked model, not from a
fine-tuned one. `train_tokens` counts the SFT stage only (the RL stage's kept samples are not
returned by `expert_iteration`); its cost columns are the demos and the reward samples.
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.elicit.api import Budget, Context, DemosAndReward, Elicited
from pwlock.elicit.expert_iteration import ExpertIteration
from pwlock.elicit.sft import SFT
from pwlock.errors import MethodError


class SFTThenRL:
    """SFT on the K demonstrations, then expert iteration on the reward (`demos:K+reward:S`): the `sft` method, then
    the `expert_iteration` method from the fine-tuned model, each with its own settings."""

    name = "sft_then_rl"
    settings = ("demos+reward",)
    version = "4"  # the stages' settings live in SFT and ExpertIteration, outside this class's source
    first: type[SFT] = SFT
    then: type[ExpertIteration] = ExpertIteration
    """The two stages (classes, so a variant subclasses them; the combined budget is both a Demos and a Reward)."""

    def __call__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: Context,
                 budget: Budget, seed: int) -> Elicited:
        assert isinstance(budget, DemosAndReward)
        rl = self.then()
        try:  # checked first: no training is wasted on a run that cannot finish
            rl.plan(budget)
        except MethodError as e:
            raise MethodError(f"{self.name}: {e}") from None
        tuned = self.first()(model, tokenizer, context, budget, seed)
        rl(tuned.model, tokenizer, context, budget, seed)
        return Elicited(tuned.model, train_tokens=tuned.train_tokens)
