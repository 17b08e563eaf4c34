"""The GPU configs follow the paper where it is explicit (Appendix G.1, Figure 5)."""

from __future__ import annotations

import pytest

from pwlock.cli import packaged_config
from pwlock.experiments.config import load_config

GPU_CONFIGS = ["gpu/math.yaml", "gpu/code.yaml", "gpu/mmlu.yaml"]


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_locking_and_sft_elicitation_warm_up_linearly(name):
    """Appendix G.1: a linear warm-up for locking and for supervised unlocking alike."""
    cfg = load_config(packaged_config(name))
    assert cfg.lock.sft.warmup_steps > 0
    for block in cfg.elicit.sft_blocks():
        assert 0 < block.warmup_steps <= 32  # 32: the fewest steps of any evaluated run (k=8..256)


def test_code_rl_ranks_by_binary_correctness_first_and_keeps_the_continuous_variant():
    cfg = load_config(packaged_config("gpu/code.yaml"))
    binary, continuous = cfg.elicit.rl_blocks()
    assert binary.reward == "binary" and continuous.reward == "continuous"  # Figure 5, then App. B.3.2
    assert binary.model_dump(exclude={"reward"}) == continuous.model_dump(exclude={"reward"})


def test_math_rl_is_binary():
    cfg = load_config(packaged_config("gpu/math.yaml"))
    assert [rl.reward for rl in cfg.elicit.rl_blocks()] == ["binary"]
