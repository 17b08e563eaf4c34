"""The built-in detectors, registered by name (`pwlock detect --list`)."""

from pwlock.detect.api import register
from pwlock.detect.difficulty import DifficultyShape
from pwlock.detect.elicitation_gap import ElicitationGap
from pwlock.detect.noise import LoRANoiseInjection, NoiseInjection
from pwlock.detect.probe import Probe

register(NoiseInjection())
register(LoRANoiseInjection())
register(ElicitationGap())
register(DifficultyShape())
register(Probe())
