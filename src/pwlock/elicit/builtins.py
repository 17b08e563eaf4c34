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

# Beyond the paper (issue #16): steering with its random-vector control, many-shot prompting with
# correct and wrong shots, prefilling and personas.
from pwlock.elicit.manyshot import ManyShot  # noqa: E402
from pwlock.elicit.prefill import Persona, Prefill  # noqa: E402
from pwlock.elicit.steering import Steering  # noqa: E402

for method in (Steering(), Steering("steering-random", random=True), ManyShot(), ManyShot("manyshot-wrong", wrong=True),
               Prefill(), Persona()):
    register(method)
