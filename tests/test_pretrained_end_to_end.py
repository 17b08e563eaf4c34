"""A tiny end-to-end run on a pretrained-style model dir: the policy pipeline of section 4.1
(pi_strong = the strong base fine-tuned on references; pi_weak = a weak base fine-tuned to
imitate pi_strong), locking with the paper's password, SFT elicitation; full and LoRA."""

from __future__ import annotations

import json

import pytest

from pwlock.cli import main
from pwlock.io import read_jsonl
from pwlock.lock import DEFAULT_PASSWORD
from pwlock.models import load_model
from tests.helpers import write_config

TRAIN = {"epochs": 1, "batch_size": 16, "lr": 3e-3}


@pytest.mark.parametrize("lora", [None, {"r": 4, "alpha": 8}])
def test_pretrained_pipeline(tmp_path, pretrained_dir, plain_pretrained_dir, lora):
    # pi_weak's base: from scratch on the strong tokenizer, or (LoRA case) a pretrained model with
    # its own tokenizer (no chat template, another EOS), trained and sampled with that tokenizer
    weak_base = ({"hidden_size": 16, "layers": 1, "heads": 2, "max_length": 256} if lora is None
                 else {"name": str(plain_pretrained_dir)})
    cfg = write_config(
        tmp_path / "c.yaml",
        name="tiny-pretrained",
        task={"name": "arithmetic", "n_problems": 120},
        model={"name": str(pretrained_dir), "lora": lora},
        policies={"strong": "model", "strong_sft": TRAIN,
                  "weak_model": weak_base,
                  "weak_sft": TRAIN},
        lock={"methods": ["sft"], "weak_policies": ["model"], "sft": {**TRAIN, "epochs": 2}},
        elicit={"sft": {"ks": [2], "seeds": [0], "epochs": {2: [1]}, "batch_size": 2},
                # RL with LoRA adapters: filtering samples the weak *model* at temperature 1
                "rl": None if lora is None else {
                    "methods": ["filtering", "expert_iteration", "iterated_dpo"], "seeds": [0], "rounds": 1,
                    "n": 2, "eval_every": 1, "batch_size": 2, "dpo_epochs": 1, "dpo_problems": 6,
                    "dpo_lrs": [1e-3], "dpo_batch_size": 2}},
        eval={"max_problems": 8, "max_new_tokens": 12, "batch_size": 8},
    )
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    rows = read_jsonl(out / "results.jsonl")
    policies = {r["policy"] for r in rows if r["lock_method"] is None}
    assert policies == {"strong", "model"}
    locked = [r for r in rows if r["policy"] == "locked"]
    assert {(r["lock_method"], r["weak_policy"], r["with_password"]) for r in locked} == {
        ("sft", "model", True), ("sft", "model", False)}
    elicited = [r for r in rows if r["policy"] == "elicited"]
    assert [(r["k"], r["epochs"], r["seed"]) for r in elicited if r["elicitation"] == "sft"] == [(2, 1, 0)]
    if lora is not None:
        rl = {(r["elicitation"], r["samples"]) for r in elicited if r["elicitation"] != "sft"}
        assert rl == {("filtering", 0), ("filtering", 20), ("expert_iteration", 0), ("expert_iteration", 20),
                      ("iterated_dpo", 0), ("iterated_dpo", 12)}
    assert all(0 <= r["correctness"] <= 1 and r["n"] == 8 for r in rows)

    units = {p.name.rsplit("-", 1)[0] for p in (out / "cache").iterdir()}
    assert {"pi_strong", "pi_weak", "lock_sft-model", "eval_lock_sft-model"} <= units
    assert any(u.startswith("samples_") for u in units)
    # D_lock's strong side holds the paper's password at the start and the end of the prompt
    lock_dir = next(p for p in (out / "cache").iterdir() if p.name.startswith("lock_sft-model-"))
    assert json.loads((lock_dir / "unit.json").read_text())["key"]["lock"]["password"] == DEFAULT_PASSWORD
    for unit in (out / "cache").iterdir():  # keys name models by unit or config name, never by cache path
        assert str(out) not in (unit / "unit.json").read_text()
    weak_dir = next(p for p in (out / "cache").iterdir() if p.name.startswith("pi_weak-"))
    _, weak_tok = load_model(weak_dir / "model")
    assert bool(weak_tok.chat_template) == (lora is None)  # the weak base's own tokenizer was saved
    model, tok = load_model(lock_dir / "model")  # a plain model: LoRA adapters were merged before saving
    assert not hasattr(model, "peft_config") and tok.chat_template
    # pi_strong's samples were made once and reused (cached by model and problems)
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    assert read_jsonl(out / "results.jsonl") == rows
