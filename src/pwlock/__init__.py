"""pwlock: password-locked models for stress-testing capability elicitation.

Implements "Stress-Testing Capability Elicitation With Password-Locked Models"
(Greenblatt, Roger, Krasheninnikov, Krueger; NeurIPS 2024).
"""

__version__ = "0.1.0"
