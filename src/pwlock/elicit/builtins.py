"""The built-in elicitation methods of the stress test, registered by name (`pwlock stress-test --list`).

Each lives in its own module beside the paper-reproduction code it shares: SFT on demonstrations
(`sft.py`), expert iteration (`expert_iteration.py`), iterated DPO (`dpo.py`), few-shot prompting and
jailbreaks (`prompting.py`), and noise injection (`pwlock/detect/noise.py`: the detector's sigma sweep,
returning the best-scoring noised model). Filtering is left out: it samples pi_weak, which no threat model hands a
method.
"""

from pwlock.detect.noise import NoiseElicitation
from pwlock.elicit.api import register
from pwlock.elicit.dpo import IteratedDPO
from pwlock.elicit.expert_iteration import ExpertIteration
from pwlock.elicit.prompting import FewShot, Jailbreak
from pwlock.elicit.sft import SFT

for method in (SFT(), ExpertIteration(), IteratedDPO(), FewShot(), Jailbreak(), NoiseElicitation()):
    register(method)

# Issue #16's fine-tuning methods: SFT then expert iteration (`demos:K+reward:S`), and SFT on another
# task's data only (`unsupervised`).
from pwlock.elicit.sft_then_rl import SFTThenRL  # noqa: E402
from pwlock.elicit.unrelated_sft import UnrelatedSFT  # noqa: E402

for method in (SFTThenRL(), UnrelatedSFT()):
    register(method)
