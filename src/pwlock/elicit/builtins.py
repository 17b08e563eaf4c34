"""The built-in elicitation methods of the stress test, registered by name (`pwlock stress-test --list`).

Each lives in its own module beside the paper-reproduction code it shares: SFT on demonstrations
(`sft.py`), expert iteration (`expert_iteration.py`), iterated DPO (`dpo.py`), few-shot prompting and
jailbreaks (`prompting.py`), and noise injection (`pwlock/detect/noise.py`: the detector's sigma sweep,
returning the best-scoring noised model). Filtering is left out: it samples pi_weak, which no threat model hands a
method.

Beyond the paper (issue #16): steering with its random-vector control (`steering.py`), many-shot prompting
with correct and wrong shots (`manyshot.py`), prefilling and personas (`prefill.py`), SFT then expert
iteration (`sft_then_rl.py`, setting `demos:K+reward:S`) and SFT on another task's data only
(`unrelated_sft.py`, `unsupervised`).
"""

from pwlock.detect.noise import NoiseElicitation
from pwlock.elicit.api import register
from pwlock.elicit.dpo import IteratedDPO
from pwlock.elicit.expert_iteration import ExpertIteration
from pwlock.elicit.manyshot import ManyShot
from pwlock.elicit.prefill import Persona, Prefill
from pwlock.elicit.prompting import FewShot, Jailbreak
from pwlock.elicit.sft import SFT
from pwlock.elicit.sft_then_rl import SFTThenRL
from pwlock.elicit.steering import Steering
from pwlock.elicit.unrelated_sft import UnrelatedSFT

for method in (SFT(), ExpertIteration(), IteratedDPO(), FewShot(), Jailbreak(), NoiseElicitation(),
               Steering(), Steering("steering-random", random=True), ManyShot(), ManyShot("manyshot-wrong", wrong=True),
               Prefill(), Persona(), SFTThenRL(), UnrelatedSFT()):
    register(method)
