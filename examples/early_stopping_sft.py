"""A user-defined elicitation method: SFT that stops early on a held-out quarter of its demonstrations.

    pwlock stress-test sft examples/early_stopping_sft.py:EarlyStoppingSFT --suite toy --setting demos:16
"""

import copy

from pwlock.elicit.api import Demos, Elicited
from pwlock.train.sft import sft


class EarlyStoppingSFT:
    name = "early_stopping_sft"
    settings = ("demos",)  # the threat models it supports
    version = 3  # part of the cache key of its runs: change it when the code changes

    def __call__(self, model, tokenizer, context, budget, seed):
        assert isinstance(budget, Demos)
        held = max(1, len(budget.examples) // 4)
        check, train = budget.examples[:held], budget.examples[held:] or budget.examples
        best = {"hits": -1, "state": None}

        def on_epoch_end(epoch):  # keep the weights that complete the held-out demos best
            outs = context.generate(model, tokenizer, [d.prompt for d in check], batch_size=context.batch_size,
                                    max_new_tokens=context.max_new_tokens)
            hits = sum("".join(o.split()) == "".join(d.completion.split()) for o, d in zip(outs, check))
            if hits > best["hits"]:
                best.update(hits=hits, state=copy.deepcopy(model.state_dict()))

        epochs = min(64, max(4, 1024 // len(train)))  # at most 1024 demonstration passes, as Appendix G.3
        args = context.training.args(epochs, len(train), seed)  # the organism's lr, batch and optimizer
        sft(model, tokenizer, lambda _: train, args, on_epoch_end=on_epoch_end, desc="early-stopping sft")
        model.load_state_dict(best["state"])
        return Elicited(model)
