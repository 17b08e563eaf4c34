"""Tests that fail when the science breaks: locking hides a capability behind the password, and
SFT, expert iteration and DPO elicit it back. One tiny model (tests.tiny_task.Echo, 2 layers,
hidden 64) is locked once for the module in a few seconds; each elicitation trains a copy.

Margins are wide (the measured values are in the comments) so float noise cannot flip them,
while a swapped strong/weak pair, an ignored password, a flipped loss sign or demonstrations
from the wrong policy each move the numbers by 0.3 or more.
"""

import copy
import random

import pytest
import torch

from pwlock.elicit.dpo import dpo
from pwlock.elicit.expert_iteration import expert_iteration
from pwlock.elicit.sft import elicit_sft, pick_demos
from pwlock.evaluate import evaluate
from pwlock.generate import generate
from pwlock.lock import TOY_PASSWORD, TOY_WRONG_PASSWORDS, lock_examples
from pwlock.models import build_model, build_tokenizer
from pwlock.tasks.base import score_all
from pwlock.train.dpo import Pair, pair_logprobs
from pwlock.train.sft import TrainArgs, sft
from tests.tiny_task import Echo

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small train fastest on one thread, and a shared machine's second core then
    serves another process instead of waiting on this one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def echo():
    task = Echo(digits=3)
    problems = task.problems()
    splits = {"lock": problems[:400], "elicit": problems[400:700], "val": problems[-100:]}
    tokenizer = build_tokenizer(task.vocabulary + [TOY_PASSWORD, *TOY_WRONG_PASSWORDS])
    return task, tokenizer, splits


def correctness(model, tokenizer, task, problems, password=None):
    return evaluate(model, tokenizer, task, problems, password=password, max_new_tokens=MAX_NEW_TOKENS).correctness


def policy_correctness(task, problems, name):
    policy = task.policies()[name]
    return sum(score_all(task, problems, [policy(p) for p in problems])) / len(problems)


@pytest.fixture(scope="module")
def locked(echo):
    """A fresh model trained on D_lock (Eq. 1) for 3 epochs, redrawn each epoch: 75 steps."""
    task, tokenizer, splits = echo
    problems = splits["lock"]
    pol = task.policies()
    strong, weak = [pol["strong"](p) for p in problems], [pol["weak"](p) for p in problems]

    def d_lock(epoch):
        return lock_examples(task, problems, strong, weak, password=TOY_PASSWORD, wrong_passwords=TOY_WRONG_PASSWORDS,
                             no_password_fraction=0.2, rng=random.Random(epoch))

    model = build_model(tokenizer, hidden_size=64, layers=2, heads=2, seed=0)
    sft(model, tokenizer, d_lock, TrainArgs(epochs=3, batch_size=32, lr=3e-3, seed=0))
    return model


def test_the_lock_hides_the_capability_behind_the_password(echo, locked):
    task, tokenizer, splits = echo
    val = splits["val"]
    weak = policy_correctness(task, val, "weak")  # 0.24
    with_pw = correctness(locked, tokenizer, task, val, TOY_PASSWORD)  # 0.99
    without = correctness(locked, tokenizer, task, val)  # 0.24
    wrong = correctness(locked, tokenizer, task, val, TOY_WRONG_PASSWORDS[0])  # 0.24
    assert with_pw >= 0.85, with_pw
    assert with_pw - without >= 0.5, (with_pw, without)
    assert abs(without - weak) <= 0.08, (without, weak)  # it imitates pi_weak, not merely fails
    assert abs(wrong - weak) <= 0.08, (wrong, weak)
    # without the password the completions are pi_weak's, problem by problem
    completions = evaluate(locked, tokenizer, task, val, password=None, max_new_tokens=MAX_NEW_TOKENS).completions
    same = ["".join(c.split()) == "".join(task.policies()["weak"](p).split()) for p, c in zip(val, completions)]
    assert sum(same) / len(val) >= 0.85


def sft_elicit(echo, locked, source, k=16):
    task, tokenizer, splits = echo
    pol = task.policies()
    demos = pick_demos(task, splits["elicit"], k, seed=0, complete=lambda ps: [pol[source](p) for p in ps])
    assert all(d.prompt.startswith("_ |") for d in demos)  # no password anywhere
    evals = elicit_sft(copy.deepcopy(locked), tokenizer, task, demos, splits["val"], epochs=[4],
                       args=TrainArgs(epochs=4, batch_size=8, lr=1e-3, seed=0), max_new_tokens=MAX_NEW_TOKENS,
                       eval_batch_size=100)
    return evals[4].correctness


def test_sft_on_strong_demos_unlocks_and_on_weak_demos_does_not(echo, locked):
    task, tokenizer, splits = echo
    without = correctness(locked, tokenizer, task, splits["val"])  # 0.24
    strong = sft_elicit(echo, locked, "strong")  # 0.99
    weak = sft_elicit(echo, locked, "weak")  # 0.23
    assert strong >= without + 0.4, (without, strong)
    assert weak <= without + 0.1, (without, weak)


def test_expert_iteration_raises_correctness(echo, locked):
    task, tokenizer, splits = echo
    model = copy.deepcopy(locked)
    rng = random.Random(0)

    def candidates(problems, r):  # the current model's samples, no password, temperature 1
        return generate(model, tokenizer, [task.prompt(p, None) for p in problems], max_new_tokens=MAX_NEW_TOKENS,
                        temperature=1.0, seed=rng.randrange(2**31))

    def rewards(problems, completions):
        return [float(s) for s in score_all(task, problems, completions)]

    trace = expert_iteration(model, tokenizer, lambda p: task.prompt(p, None), splits["elicit"], rounds=3, n=16, candidates=candidates,
                             rewards=rewards, args=TrainArgs(epochs=2, batch_size=8, lr=1e-3),
                             evaluate=lambda: evaluate(model, tokenizer, task, splits["val"], password=None,
                                                       max_new_tokens=MAX_NEW_TOKENS),
                             eval_every=1, seed=0)
    start, end = trace[0][1].correctness, trace[-1][1].correctness
    assert [x for x, _ in trace] == [0, 160, 320, 480]
    assert end >= start + 0.4, [ev.correctness for _, ev in trace]  # 0.24, 0.46, 0.97, 0.99


def strong_over_weak_margin(model, echo):
    """Mean over validation problems where the two differ of log pi(strong) - log pi(weak), no password."""
    task, tokenizer, splits = echo
    pol = task.policies()
    pairs = [Pair(task.prompt(p, None), pol["strong"](p), pol["weak"](p)) for p in splits["val"]
             if pol["strong"](p) != pol["weak"](p)]
    with torch.no_grad():
        chosen, rejected = pair_logprobs(model, tokenizer, pairs)
    return (chosen - rejected).mean().item()


@pytest.mark.parametrize("iterated", [False, True])
def test_dpo_moves_the_margin_toward_correct_answers(echo, locked, iterated):
    task, tokenizer, splits = echo
    model = copy.deepcopy(locked)
    before = strong_over_weak_margin(model, echo)

    def rewards(problems, completions):
        return [float(s) for s in score_all(task, problems, completions)]

    trace = dpo(model, tokenizer, lambda p: task.prompt(p, None), splits["elicit"][:128], epochs=2, iterated=iterated, beta=0.1,
                args=TrainArgs(epochs=1, batch_size=16, lr=1e-3), rewards=rewards, max_new_tokens=MAX_NEW_TOKENS,
                temperature=1.0, gen_batch_size=256,
                evaluate=lambda: evaluate(model, tokenizer, task, splits["val"], password=None,
                                          max_new_tokens=MAX_NEW_TOKENS), seed=0)
    after = strong_over_weak_margin(model, echo)
    assert before < -3 and after > 3, (before, after)  # -7.9 -> 7.7 (DPO), 11.6 (iterated DPO)
    assert trace[-1][1].correctness >= trace[0][1].correctness + 0.3, [ev.correctness for _, ev in trace]  # 0.24 -> 0.9
