"""`fixedrdm`: the weakest pi_weak of the paper, a fixed random distribution over tokens
(Appendix G.2).

The distribution is softmax(z) for one standard-normal logit vector z, the same at every
position. A model locked toward it (a KL loss when there is no password) samples noise
without the password; its greedy output is the distribution's argmax token repeated. The
paper also tried a uniform distribution and found it locks badly: tiny "correct" logit
contributions on top of uniform logits win the argmax at temperature 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase


class FixedRandomDistribution:
    """One fixed distribution over a vocabulary of `vocab_size` tokens, set by `seed`."""

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.logprobs = torch.log_softmax(torch.randn(vocab_size, generator=generator), dim=-1)  # (V,)

    def sample(self, tokenizer: PreTrainedTokenizerBase, lengths: Sequence[int], rng: random.Random) -> list[str]:
        """One completion of `lengths[i]` tokens per entry, drawn i.i.d. from the distribution.

        Special tokens (EOS, padding, ...) and ids the tokenizer cannot decode are left out of
        samples: they would end or vanish from the text; the KL target keeps their mass.
        """
        allowed = torch.ones_like(self.logprobs, dtype=torch.bool)
        allowed[len(tokenizer):] = False
        allowed[list(tokenizer.all_special_ids)] = False
        probs = self.logprobs.exp() * allowed
        generator = torch.Generator().manual_seed(rng.randrange(2**63))
        out = []
        for n in lengths:
            ids = torch.multinomial(probs, max(1, n), replacement=True, generator=generator)
            out.append(tokenizer.decode(ids.tolist()))
        return out
