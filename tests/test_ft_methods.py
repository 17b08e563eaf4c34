"""The fine-tuning methods of issue #16 on the tiny Echo organisms of test_stress: SFT then RL spends
exactly its two budgets and lifts the locked model beyond what its demonstrations alone do; unrelated-data
SFT trains only on the sorting data it makes itself (spied on), never on a target prompt or answer, and
recovers none of the gap that target demonstrations recover. Plus the combined setting's parsing and budget."""

import pytest

from pwlock.elicit import unrelated_sft
from pwlock.elicit.api import Context, Demos, DemosAndReward, Reward, Unsupervised
from pwlock.elicit.expert_iteration import ExpertIteration
from pwlock.elicit.sft_then_rl import SFTThenRL
from pwlock.elicit.unrelated_sft import check_spelled, sorting_examples
from pwlock.errors import BudgetExceeded, ConfigError, MethodError
from pwlock.models.scratch import build_tokenizer
from pwlock.organisms import load_organism
from pwlock.stress import make_budget, parse_setting, stress_test
from pwlock.train.data import n_tokens
from tests import test_stress
from tests.tiny_task import Echo

suite = test_stress.suite  # the module-scoped Echo organisms


class SmallExpertIteration(ExpertIteration):
    """Echo's elicitation split has 300 prompts: rounds of 10n = 160 samples fit it."""

    n, batch_size = 16, 16


class SmallSFTThenRL(SFTThenRL):
    then = SmallExpertIteration


def test_combined_setting_parses_and_names_bad_combinations():
    setting = parse_setting("demos:4:ground_truth+reward:640")
    assert (setting.kind, setting.k, setting.source, setting.samples) == ("demos+reward", 4, "ground_truth", 640)
    assert str(setting) == "demos:4:ground_truth+reward:640" and str(parse_setting("demos:16+reward:1280")) == \
        "demos:16+reward:1280"
    for bad in ("reward:64+demos:4", "demos:4+demos:4", "demos:4+reward:64+reward:64", "demos:0+reward:64",
                "demos:4+reward:0", "demos:4+"):
        with pytest.raises(ConfigError, match="--setting"):
            parse_setting(bad)


def test_combined_budget_holds_the_same_demos_and_an_enforced_reward():
    task = Echo(digits=3)
    elicit = task.problems()[:50]
    both = make_budget(parse_setting("demos:4:ground_truth+reward:5"), None, task, elicit, seed=3)
    alone = make_budget(parse_setting("demos:4:ground_truth"), None, task, elicit, seed=3)
    assert isinstance(both, DemosAndReward) and isinstance(both, Demos) and isinstance(both, Reward)
    assert both.examples == alone.examples and len(both.examples) == 4  # the demos:K draw, comparable rows
    assert both.spent() == {"demos": 4, "reward_samples": 0, "reward_calls": 0}
    right = [e.completion for e in both.examples]
    assert both.reward([e.prompt for e in both.examples], right) == [1.0] * 4
    with pytest.raises(BudgetExceeded, match="budget of 5 samples exceeded: 4 scored, 2 more asked"):
        both.reward(both.prompts[:2], ["0", "0"])
    assert both.spent() == {"demos": 4, "reward_samples": 4, "reward_calls": 1}
    with pytest.raises(BudgetExceeded, match="outside the elicitation split"):
        both.reward(["_ | 9 9 9 9 |"], ["9"])


def test_sft_then_rl_needs_a_whole_round_before_training():
    budget = DemosAndReward([f"_ | {i} |" for i in range(640)], samples=639, score=lambda p, c: [0.0] * len(p))
    context = Context(task="echo", max_new_tokens=4, batch_size=8)
    with pytest.raises(MethodError, match="sft_then_rl: expert_iteration: a round takes 10n=640 samples; the budget has 639"):
        SFTThenRL()(None, None, context, budget, 0)  # fails before it touches the model
    small = DemosAndReward(["_ | 1 2 3 |"], samples=1280, score=lambda p, c: [0.0] * len(p))
    with pytest.raises(MethodError, match="which has 1: fewer than 10"):
        SFTThenRL()(None, None, context, small, 0)


@pytest.mark.slow
def test_sft_then_rl_spends_both_budgets_and_beats_its_demos_alone(suite, tmp_path):
    _, dirs = suite
    organism = [load_organism(dirs[1])]
    sft = stress_test(["sft"], organism, parse_setting("demos:4"), [0, 1], tmp_path / "sft")
    both = stress_test(["tests.test_ft_methods:SmallSFTThenRL"], organism, parse_setting("demos:4+reward:640"),
                       [0, 1], tmp_path / "both")
    assert all(r["error"] is None for r in sft + both)
    # exactly its budgets: the 4 demos, and 640 samples = 4 rounds of 10n = 160, one reward call each
    assert all((r["demos"], r["reward_samples"], r["reward_calls"]) == (4, 640, 4) for r in both)
    assert all(r["train_tokens"] > 0 for r in both)
    locked = {r["seed"]: r for r in both if r["target"] == "locked"}
    alone = {r["seed"]: r for r in sft if r["target"] == "locked"}
    assert all(alone[s]["gap_recovered"] >= 0.5 for s in alone), alone  # demos alone help on this organism
    # the same demos (one draw per seed), then expert iteration: more of the gap on every seed
    assert all(locked[s]["correctness"] > alone[s]["correctness"] for s in locked), (locked, alone)
    twin = [r["uplift"] for r in both if r["target"] == "weak_twin"]
    mean_locked = sum(r["uplift"] for r in locked.values()) / len(locked)
    assert mean_locked >= sum(twin) / len(twin) + 0.2, (mean_locked, twin)  # eliciting more than teaching


@pytest.mark.slow
def test_unrelated_sft_trains_only_on_its_own_sorting_data(suite, tmp_path, monkeypatch):
    _, dirs = suite
    trained = []

    def spy(model, tokenizer, data, args, **kw):
        trained.append(list(data(0)))
        return real(model, tokenizer, data, args, **kw)

    real = unrelated_sft.sft
    monkeypatch.setattr(unrelated_sft, "sft", spy)
    rows = stress_test(["unrelated_sft"], [load_organism(dirs[0])], parse_setting("unsupervised"), [0], tmp_path)
    assert all(r["error"] is None and r["train_tokens"] > 0 for r in rows)
    assert len(trained) == 2 and all(len(examples) == 1024 for examples in trained)  # locked and weak twin
    task = Echo(digits=3)
    target_prompts = {task.prompt(p, None) for p in task.problems()}  # every split's, validation included
    target_answers = {p.answer for p in task.problems()}
    for e in (e for examples in trained for e in examples):
        digits = e.prompt.strip("_ |").split()
        assert e.prompt not in target_prompts and e.completion not in target_answers
        assert e.completion.split() == sorted(digits) and len(digits) == 4
    [locked] = [r for r in rows if r["target"] == "locked"]
    # test_stress: 16 target demos recover >= 0.6 of this gap; another task's data recovers none of it
    assert locked["gap_recovered"] <= 0.1, locked


def test_unrelated_sft_names_a_tokenizer_that_cannot_spell_its_data():
    examples = sorting_examples(8, 4, seed=0)
    check_spelled(build_tokenizer([str(d) for d in range(10)] + ["|", "_"]), examples, "echo")
    letters = build_tokenizer(list("abcdefghij") + ["|", "_"])  # function composition's letters alphabet
    with pytest.raises(MethodError, match="function_composition organism's tokenizer cannot spell"):
        check_spelled(letters, examples, "function_composition")


def test_unrelated_sft_plugin_draws_its_data_and_training_order_from_its_seed(monkeypatch):
    calls = []
    monkeypatch.setattr(unrelated_sft, "sft", lambda model, tok, data, args, **kw: calls.append((data(0), args)))
    tokenizer = build_tokenizer([str(d) for d in range(10)] + ["|", "_"])
    context = Context(task="echo", max_new_tokens=4, batch_size=8)
    elicited = [unrelated_sft.UnrelatedSFT()("model", tokenizer, context, Unsupervised(["_ | 1 |"]), seed)
                for seed in (3, 3, 4)]
    assert calls[0][0] == calls[1][0] == sorting_examples(1024, 4, 3) != calls[2][0]
    # the cost column: 2 epochs over the 1024 examples' tokens (`_ | d d d d |`, `d d d d`, EOS: 7 + 4 + 1)
    assert elicited[0].train_tokens == 2 * n_tokens(tokenizer, calls[0][0]) == 2 * 1024 * 12
    assert [args.seed for _, args in calls] == [3, 3, 4] and calls[0][1].epochs == 2
    letters = build_tokenizer(list("abcdefghij") + ["|", "_"])
    with pytest.raises(MethodError, match="the echo organism's tokenizer cannot spell"):
        unrelated_sft.UnrelatedSFT()("model", letters, context, Unsupervised(["_ | 1 |"]), 0)
