"""The built-in detectors, registered by name (`pwlock detect --list`)."""

from pwlock.detect.api import register
from pwlock.detect.noise import NoiseInjection

register(NoiseInjection())
