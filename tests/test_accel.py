"""Accelerate glue in one process: nothing is wrapped, batches are not split, saving is plain."""

from __future__ import annotations

import torch

from pwlock.train import accel


def test_single_process_is_plain_pytorch(tmp_path, tiny_model):
    assert not accel.distributed() and accel.is_main_process()
    optimizer = torch.optim.AdamW(tiny_model.parameters())
    model, opt = accel.prepare(tiny_model, optimizer)
    assert model is tiny_model and opt is optimizer  # trains in place, bit for bit as before
    assert accel.shard([1, 2, 3]) == ([1, 2, 3], 1.0)
    accel.wait()  # a no-op barrier
    accel.save_pretrained(tiny_model, tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()


def test_an_empty_shard_still_runs_a_step_with_zero_weight(monkeypatch):
    class TwoProcesses:
        process_index, num_processes = 1, 2

    monkeypatch.setattr(accel, "accelerator", lambda: TwoProcesses())
    assert accel.shard(["a", "b", "c"]) == (["b"], 1.0)
    assert accel.shard(["a"]) == (["a"], 0.0)  # process 1 of 2 has nothing: it repeats "a" at weight 0
