"""Circuit-broken organisms (train/rerouting.py): the losses and schedule against hand-derived values,
the training on a 2-layer model (the no-password representations turn away from the plain lock's while
the password path keeps its outputs), the organism card, and bad layer lists named."""

import json
import math

import pytest
import torch

from pwlock.errors import ConfigError
from pwlock.evaluate import evaluate
from pwlock.lock import lock_name
from pwlock.models import load_model
from pwlock.organisms import build_suite, load_organism, load_suite, organism_name, plan, suite_names, suite_organisms
from pwlock.train.rerouting import (
    RerouteArgs,
    check_layers,
    circuit_break,
    coefficients,
    hidden_cosine,
    rerouting_loss,
    retain_loss,
)
from pwlock.types import Example
from tests.helpers import build_echo_suite
from tests.tiny_task import Echo


def test_rerouting_loss_is_the_relu_of_the_cosine_over_real_tokens_and_layers():
    frozen = torch.tensor([[[[1.0, 0.0], [1.0, 0.0], [2.0, 2.0]]],
                           [[[0.0, 3.0], [1.0, 0.0], [5.0, 5.0]]]])  # (L=2, B=1, T=3, H=2)
    trained = torch.tensor([[[[2.0, 0.0], [0.0, 1.0], [9.0, 9.0]]],  # cos 1, 0, (padding)
                            [[[1.0, 1.0], [-1.0, 0.0], [9.0, 9.0]]]])  # cos 1/sqrt(2), -1 -> ReLU 0
    mask = torch.tensor([[1, 1, 0]])
    expected = (1 + 0 + 1 / math.sqrt(2) + 0) / 4
    assert rerouting_loss(trained, frozen, mask).item() == pytest.approx(expected, abs=1e-6)
    assert rerouting_loss(-frozen, frozen, mask).item() == 0.0  # pointing away costs nothing


def test_centred_rerouting_ignores_a_massive_dimension_and_a_sink_token():
    """Tokens that share a massive dimension (100) have raw cosines near 1 whatever else they carry;
    centred on the frozen states' median (a sink token's 1000 and the padding left out), the loss sees
    that the trained states turned the token-specific part by 90 degrees."""
    frozen = torch.tensor([[[[1000.0, 3, 0], [100, 1, 0], [100, 0, 1], [100, -1, 0], [9, 9, 9]]]])  # (1, 1, 5, 3)
    trained = torch.tensor([[[[1000.0, 3, 0], [100, 0, 1], [100, -1, 0], [100, 0, -1], [7, 7, 7]]]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    assert rerouting_loss(trained, frozen, mask).item() > 0.999
    assert rerouting_loss(trained, frozen, mask, centre=True).item() == pytest.approx(0.25)  # the sink alone: cos 1
    assert rerouting_loss(frozen, frozen, mask, centre=True).item() == pytest.approx(1.0)  # unchanged states: cos 1


def test_retain_loss_is_the_mean_l2_distance_over_real_tokens_and_layers():
    frozen = torch.zeros(2, 1, 3, 2)
    trained = torch.tensor([[[[3.0, 4.0], [0.0, 0.0], [7.0, 7.0]]],
                            [[[0.0, 1.0], [6.0, 8.0], [7.0, 7.0]]]])
    mask = torch.tensor([[1, 1, 0]])
    assert retain_loss(trained, frozen, mask).item() == pytest.approx((5 + 0 + 1 + 10) / 4)
    same = frozen.clone().requires_grad_(True)
    retain_loss(same, frozen, mask).backward()  # step 1: trained == frozen, distance 0 everywhere
    assert torch.isfinite(same.grad).all() and same.grad.abs().sum() == 0


def test_relative_retain_weighs_a_sink_token_like_the_others():
    """A sink token of norm 1000 beside two of norm 2 (and a padded one, left out): raw L2 lets the sink's
    distance of 10 dominate; relative, it counts 10 / 1000 x the median norm 2 = 0.02, the others 1 / 2 x 2."""
    frozen = torch.tensor([[[[1000.0, 0.0], [0.0, 2.0], [2.0, 0.0], [5e4, 5e4]]]])
    trained = frozen + torch.tensor([[[[0.0, 10.0], [1.0, 0.0], [0.0, 1.0], [3e3, 0.0]]]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert retain_loss(trained, frozen, mask).item() == pytest.approx((10 + 1 + 1) / 3)
    assert retain_loss(trained, frozen, mask, relative=True).item() == pytest.approx((0.02 + 1 + 1) / 3)
    assert retain_loss(frozen, frozen, mask, relative=True).item() == 0


def test_the_schedule_moves_weight_from_rerouting_to_retaining():
    assert coefficients(1, 4, 10.0) == pytest.approx((8.75, 1.25))  # 10 (1 - 1/8), 10/8
    assert coefficients(2, 4, 10.0) == pytest.approx((7.5, 2.5))
    assert coefficients(4, 4, 10.0) == pytest.approx((5.0, 5.0))  # alpha/2 each at t = T


def test_bad_layer_lists_are_named():
    with pytest.raises(ConfigError, match="layers is empty"):
        check_layers([], 2)
    with pytest.raises(ConfigError, match=r"layers \[2, -1\] out of range: the model has 2 blocks \(0-1\)"):
        check_layers([0, 2, -1], 2)
    with pytest.raises(ConfigError, match="names a block twice"):
        check_layers([1, 1], 2)


# -- on a tiny model ------------------------------------------------------------------------------

CB = {"layers": [0], "steps": 150, "batch_size": 16, "lr": 3e-3, "alpha": 10.0, "nll": 5.0}


@pytest.fixture(scope="module")
def suite(tmp_path_factory, echo_patch, echo_cache):
    """A plain Echo lock and the same lock circuit-broken, one suite (the lock is trained once)."""
    root = tmp_path_factory.mktemp("organisms")
    entries = (f"[{{config: echo.yaml, locks: [from_scratch], seeds: [0]}}, "
               f"{{config: echo.yaml, locks: [from_scratch], seeds: [0], circuit_breaker: {json.dumps(CB)}}}]")
    return root, build_echo_suite(root, echo_cache, entries, name="echo-cb")


def test_the_card_says_circuit_broken_and_keeps_the_password_path(suite):
    root, dirs = suite
    assert [d.name for d in dirs] == ["tiny-from_scratch-s0", "tiny-from_scratch-circuit_broken-s0"]
    plain, broken = (load_organism(d).card for d in dirs)
    assert plain.lock["method"] == "from_scratch" and broken.lock["method"] == "circuit_broken"
    base = broken.lock["base_lock"]
    assert base["name"] == "from_scratch" and base["correctness"] == plain.correctness
    assert {k: broken.lock["circuit_breaker"][k] for k in CB} == CB
    c = broken.correctness
    assert c["with_password"] >= plain.correctness["with_password"] - 0.1, (c, plain.correctness)
    # without the password it still imitates pi_weak (right on ~a fifth), through rerouted states
    assert abs(c["without_password"] - plain.twins["weak"]["without_password"]) <= 0.15, (c, plain.twins)
    cosine = broken.lock["circuit_breaker"]["cosine"]
    assert cosine["without_password"] < 0.3 and cosine["with_password"] > 0.9, cosine
    assert broken.twins == plain.twins  # the same benign models, measured the same way
    for twin in ("weak", "strong"):
        a, b = (d / "twins" / twin / "model.safetensors" for d in dirs)
        assert a.read_bytes() == b.read_bytes()
    assert (dirs[0] / "model" / "model.safetensors").read_bytes() != (dirs[1] / "model" / "model.safetensors").read_bytes()
    assert [o.name for o in suite_organisms(root / "echo-cb_suite.yaml", root)] == [d.name for d in dirs]


@pytest.mark.parametrize("relative_retain", [False, True])
def test_rerouting_lowers_the_no_password_cosine_and_retain_keeps_password_outputs(suite, relative_retain):
    """The published recipe (no NLL term), straight on the plain lock, with the raw or the relative
    retain distance: representations move where rerouted and stay where retained."""
    root, dirs = suite
    task = Echo(digits=3)
    problems = task.problems()
    lock, val = problems[100:500], problems[800:900]
    weak, strong = task.policies()["weak"], task.policies()["strong"]
    reroute = [Example(task.prompt(p, None), weak(p)) for p in lock]
    retain = [Example(task.prompt(p, "swordfish"), strong(p)) for p in lock]
    model, tokenizer = load_model(dirs[0] / "model", device="cpu")
    frozen, _ = load_model(dirs[0] / "model", device="cpu")
    no_pw, pw = [task.prompt(p, None) for p in val], [task.prompt(p, "swordfish") for p in val]
    assert hidden_cosine(model, frozen, tokenizer, no_pw, [0, 1]) == pytest.approx(1.0, abs=1e-5)
    args = RerouteArgs(layers=(1,), steps=60, batch_size=16, lr=3e-3, alpha=10.0, relative_retain=relative_retain)
    history = circuit_break(model, frozen, tokenizer, reroute, retain, args)
    assert [(h["c_rr"], h["c_retain"]) for h in history[:2]] == [coefficients(t, 60, 10.0) for t in (1, 2)]
    assert history[0]["rr"] == pytest.approx(1.0, abs=1e-5) and history[0]["retain"] == pytest.approx(0.0, abs=1e-5)
    assert hidden_cosine(model, frozen, tokenizer, no_pw, [1]) < 0.3
    assert hidden_cosine(model, frozen, tokenizer, pw, [1]) > 0.95

    def completions(m, prompts):
        return evaluate(m, tokenizer, task, val, password=None, prompts=prompts, max_new_tokens=4).completions

    same = sum(a == b for a, b in zip(completions(model, pw), completions(frozen, pw), strict=True))
    assert same >= 0.9 * len(val), same


def test_bad_circuit_breaker_settings_are_named(suite, tmp_path, echo_cache):
    root, _ = suite
    bad = tmp_path / "empty.yaml"
    bad.write_text("name: x\nversion: 1\norganisms:\n"
                   "  - {config: echo.yaml, locks: [from_scratch], circuit_breaker: {layers: []}}\n")
    with pytest.raises(ConfigError, match=r"circuit_breaker\.layers"):
        load_suite(bad)
    (root / "far.yaml").write_text("name: far\nversion: 1\norganisms:\n"
                                   "  - {config: echo.yaml, locks: [from_scratch], circuit_breaker: {layers: [5]}}\n")
    with pytest.raises(ConfigError, match=r"circuit_breaker\.layers \[5\] out of range: the model has 2 blocks"):
        build_suite(root / "far.yaml", root, cache_dir=echo_cache)  # the plain lock comes from the cache; no circuit breaking starts
    model, tokenizer = load_model(suite[1][0] / "model", device="cpu")
    with pytest.raises(ConfigError, match="layers is empty"):
        circuit_break(model, model, tokenizer, [], [], RerouteArgs(layers=()))


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_plans(name):
    # a suite that names a lock its config lacks, or circuit-breaks one that cannot be, fails before any training
    suite, base = load_suite(name)
    planned = plan(suite, base)
    names = [organism_name(p.cfg, lock_name(*p.key), p.seed) for p in planned]
    assert len(planned) >= 1 and len(set(names)) == len(names), names
    if name.endswith("-cb"):  # every lock circuit-broken, each a lock of the plain suite
        plain = plan(*load_suite(name[: -len("-cb")]))
        assert all(p.circuit_breaker for p in planned)
        assert {(p.key, p.seed) for p in planned} <= {(p.key, p.seed) for p in plain}


def test_twins_train_with_a_lock_budget_even_without_from_scratch_settings():
    # the toy suite's per-domain lock comes from a config with only an SFT lock of a strong base: its twins
    # are trained as that base was (its build once failed on the last organism, after 40 minutes)
    from pwlock.cli import packaged_config
    from pwlock.experiments.config import load_config
    from pwlock.experiments.runner import twin_training

    plain = load_config(packaged_config("function_composition.yaml"))
    assert twin_training(plain) == (plain.lock.from_scratch, 2)  # D_lock holds each problem twice an epoch
    domains = load_config(packaged_config("domains_function_composition.yaml"))
    assert domains.lock.from_scratch is None
    assert twin_training(domains) == (domains.lock.pretrain, 1)
    pretrained = plain.model_copy(update={"model": plain.model.model_copy(update={"name": "some/lm"}),
                                          "lock": plain.lock.model_copy(update={"sft": None})})
    with pytest.raises(ConfigError, match="lock.sft"):
        twin_training(pretrained)


def test_a_suite_that_lists_one_lock_twice_is_warned(tmp_path, echo_patch, echo_cache, capsys):
    # two configs that differ only in name train the same weights (as the toy suite's version 1 listed the
    # RL identity16 lock beside the identical SFT lock): a stress test would count that model twice
    from tests.helpers import ECHO, write_config

    write_config(tmp_path / "echo_again.yaml", name="echo_again", **ECHO)
    dirs = build_echo_suite(tmp_path, echo_cache, "[{config: echo.yaml, locks: [from_scratch], seeds: [0]}, "
                                                  "{config: echo_again.yaml, locks: [from_scratch], seeds: [0]}]",
                            name="twice")
    assert len(dirs) == 2
    err = capsys.readouterr().err
    assert f"{dirs[0].name}, {dirs[1].name} have identical weights" in err, err
    build_echo_suite(tmp_path, echo_cache)  # distinct locks (seeds 0 and 1): no warning
    assert "identical weights" not in capsys.readouterr().err
