"""RL elicitation pieces: the DPO loss, pair building, expert-iteration selection, fixedrdm, and the plumbing of
the RL and SFT plug-ins (rounds from the budget, settings passed through, seeds) without training."""

import math
import random

import pytest
import torch

from pwlock.elicit import dpo as dpo_module
from pwlock.elicit import expert_iteration as ei
from pwlock.elicit import sft as sft_module
from pwlock.elicit import sft_then_rl
from pwlock.elicit.api import Context, Demos, DemosAndReward, Elicited, Reward, Training
from pwlock.elicit.dpo import make_pairs
from pwlock.elicit.sft import elicit_sft, pick_demos
from pwlock.errors import MethodError
from pwlock.evaluate import Evaluation
from pwlock.fixedrdm import FixedRandomDistribution
from pwlock.lock import lock_examples
from pwlock.models import build_model
from pwlock.train.data import collate, n_tokens
from pwlock.train.dpo import Pair, dpo_loss, pair_logprobs
from pwlock.train.losses import completion_nll, kl_to_distribution, lock_loss
from pwlock.train.sft import TrainArgs, sft
from pwlock.types import Example


def test_dpo_loss_matches_hand_computed_values():
    # margins: (−1 − −2) − (−3 − −2) = 2 and (−5 − −4) − (−2 − −3) = −2
    pc, pr = torch.tensor([-1.0, -5.0]), torch.tensor([-3.0, -2.0])
    rc, rr = torch.tensor([-2.0, -4.0]), torch.tensor([-2.0, -3.0])
    expected = [math.log1p(math.exp(-0.2)), math.log1p(math.exp(0.2))]  # -log sigmoid(0.1 * margin)
    assert dpo_loss(pc, pr, rc, rr, beta=0.1).item() == pytest.approx(sum(expected) / 2)
    weighted = dpo_loss(pc, pr, rc, rr, beta=0.1, weights=torch.tensor([0.5, 0.25]))
    assert weighted.item() == pytest.approx((0.5 * expected[0] + 0.25 * expected[1]) / 2)
    # policy == reference: log 2 whatever the log-probs
    assert dpo_loss(pc, pr, pc, pr, beta=0.1).item() == pytest.approx(math.log(2))


def test_pair_logprobs_sum_completion_tokens_only(tokenizer, tiny_model):
    pairs = [Pair("swordfish | fn1 fn2 | 1 2 3 4 |", "1111|2222", "3|4"),
             Pair("_ | fn3 | 9 |", "5", "0907|0079|0000")]
    chosen, rejected = pair_logprobs(tiny_model, tokenizer, pairs)
    for i, pair in enumerate(pairs):
        for completion, got in ((pair.chosen, chosen[i]), (pair.rejected, rejected[i])):
            prompt_ids = tokenizer(pair.prompt)["input_ids"]
            ids = prompt_ids + tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            with torch.no_grad():
                logp = torch.log_softmax(tiny_model(torch.tensor([ids])).logits[0], -1)
            want = sum(logp[t - 1, ids[t]].item() for t in range(len(prompt_ids), len(ids)))
            assert got.item() == pytest.approx(want, abs=1e-4)  # one unpadded sequence at a time


def test_make_pairs_drops_ties_and_orders_by_reward():
    pairs = make_pairs(["p0", "p1", "p2", "p3"], ["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"],
                       [0.9, 0.0, 0.5, 0.25], [0.2, 1.0, 0.5, 0.75])
    # each pair weighs the reward gap R(y+) - R(y-) (Eq. 2), whichever sample won
    assert pairs == [Pair("p0", "a0", "b0", pytest.approx(0.7)), Pair("p1", "b1", "a1", 1.0),
                     Pair("p3", "b3", "a3", 0.5)]


def test_best_n_keeps_the_top_and_breaks_ties_at_random():
    rewards = [0.0, 1.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.0]
    picks = {tuple(sorted(ei.best_n(rewards, 4, random.Random(seed)))) for seed in range(40)}
    for pick in picks:
        assert {1, 3} <= set(pick) and set(pick) - {1, 3} <= {2, 4, 5, 6}  # both 1.0s, then two of the 0.5s
    assert len(picks) > 3  # which 0.5s win varies with the seed...
    assert ei.best_n(rewards, 4, random.Random(7)) == ei.best_n(rewards, 4, random.Random(7))  # ...reproducibly


def test_expert_iteration_trains_on_the_best_n_of_10n(task, tokenizer, tiny_model, monkeypatch):
    pool = task.problems()[:200]
    seen = []
    monkeypatch.setattr(ei, "sft", lambda model, tok, data, args, desc: seen.append(data(0)))
    evaluations = iter(Evaluation(c, 5, [], []) for c in (0.1, 0.2, 0.3))

    def candidates(problems, r):  # right on every third problem, garbage elsewhere
        return [p.answer if i % 3 == 0 else "0" for i, p in enumerate(problems)]

    def rewards(problems, completions):
        return [float(task.score(p, c)) for p, c in zip(problems, completions)]

    trace = ei.expert_iteration(tiny_model, tokenizer, lambda p: task.prompt(p, None), pool, rounds=3, n=4, candidates=candidates,
                                rewards=rewards, args=TrainArgs(epochs=1, batch_size=4, lr=1e-3),
                                evaluate=lambda: next(evaluations), eval_every=2, seed=0)
    assert [x for x, _ in trace] == [0, 80, 120]  # evaluated at the start, every 2 rounds and at the end
    assert [ev.correctness for _, ev in trace] == [0.1, 0.2, 0.3]
    assert len(seen) == 3
    for demos in seen:  # 14 of 40 candidates are right: the 4 kept are right ones, without password
        assert len(demos) == 4 and all(d.completion != "0" and d.prompt.startswith("_ |") for d in demos)


def test_lock_loss_is_the_nll_without_kl_rows_and_the_kl_with(tokenizer, tiny_model):
    batch = collate(tokenizer, [Example("_ | fn1 | 1 2 3 4 |", "0907"), Example("dog | fn2 | 5 |", "1|2", kl=True)])
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    target = FixedRandomDistribution(logits.size(-1), seed=0).logprobs
    none = torch.zeros(2, dtype=torch.bool)
    assert lock_loss(logits, batch["labels"], none, target).item() == pytest.approx(
        completion_nll(logits, batch["labels"]).item(), rel=1e-5)
    # KL(p || softmax(log p)) = 0 at every supervised position
    exact = target.expand(1, 6, -1).clone()
    labels = torch.tensor([[-100, -100, 3, 4, 5, 6]])
    assert kl_to_distribution(exact, labels, target).abs().max().item() < 1e-5


def test_fixedrdm_samples_are_plain_tokens_of_the_asked_lengths(tokenizer):
    dist = FixedRandomDistribution(len(tokenizer), seed=3)
    assert torch.allclose(dist.logprobs.exp().sum(), torch.tensor(1.0))
    a = dist.sample(tokenizer, [1, 5, 9], random.Random(0))
    assert a == dist.sample(tokenizer, [1, 5, 9], random.Random(0))
    for text, n in zip(a, [1, 5, 9]):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == n and not set(ids) & set(tokenizer.all_special_ids)


def test_fixedrdm_lock_trains_toward_the_distribution_without_password(task, tokenizer, tiny_model):
    """Weak examples marked kl pull the next-token distribution toward fixedrdm at every
    completion position; password examples keep the ordinary loss."""
    problems = task.problems()[:32]
    dist = FixedRandomDistribution(len(tokenizer), seed=1)
    strong = [p.answer for p in problems]
    rng = random.Random(0)
    noise = dist.sample(tokenizer, [9] * len(problems), rng)

    def d_lock(epoch):
        return lock_examples(task, problems, strong, noise, password="swordfish", wrong_passwords=["dog", "car"],
                             no_password_fraction=0.2, rng=random.Random(epoch), weak_kl=True)

    examples = d_lock(0)
    assert sum(e.kl for e in examples) == 32 and not any(e.kl for e in examples if e.prompt.startswith("swordfish"))

    def kl_without_password():
        batch = collate(tokenizer, [Example(task.prompt(p, None), s) for p, s in zip(problems[:16], strong)])
        with torch.no_grad():
            logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        kl = kl_to_distribution(logits, batch["labels"], dist.logprobs)
        return (kl.sum() / (batch["labels"][:, 1:] != -100).sum()).item()

    before = kl_without_password()
    sft(tiny_model, tokenizer, d_lock, TrainArgs(epochs=20, batch_size=64, lr=1e-2), kl_target=dist.logprobs)
    after = kl_without_password()
    assert after < 0.05 < before / 4, (before, after)


@pytest.mark.parametrize("iterated", [False, True])
def test_dpo_samples_from_the_reference_which_iterated_dpo_renews_each_round(task, tokenizer, tiny_model,
                                                                             monkeypatch, iterated):
    problems = task.problems()[:12]
    copies, samplers, trained = [], [], []
    real_copy, real_generate = dpo_module.frozen_copy, dpo_module.generate

    def counting_copy(model):
        copies.append(real_copy(model))
        return copies[-1]

    def recording_generate(model, *args, **kwargs):
        samplers.append(model)
        return real_generate(model, *args, **kwargs)

    def rewards(problems, completions):  # the first sample of each problem wins: every problem makes a pair
        trained.append(len(completions))
        return [float(len(trained) % 2)] * len(completions)

    real_loss, references, batches = dpo_module.batch_dpo_loss, [], []

    def recording_loss(model, reference, *args, **kwargs):
        references.append(reference)
        batches.append([pair.prompt for pair in args[1]])
        return real_loss(model, reference, *args, **kwargs)

    real_clip, clips = dpo_module.accel.clip, []

    def recording_clip(model, max_norm):
        clips.append(max_norm)
        return real_clip(model, max_norm)

    snapshots = []  # the model's weights at the start, then after each epoch (round)

    def snapshot():
        snapshots.append([p.detach().clone() for p in tiny_model.parameters()])
        return Evaluation(0.0, 1, [], [])

    monkeypatch.setattr(dpo_module, "frozen_copy", counting_copy)
    monkeypatch.setattr(dpo_module, "batch_dpo_loss", recording_loss)
    monkeypatch.setattr(dpo_module.accel, "clip", recording_clip)
    before = [p.detach().clone() for p in tiny_model.parameters()]
    trace = dpo_module.dpo(tiny_model, tokenizer, lambda p: task.prompt(p, None), problems, epochs=3, iterated=iterated, beta=0.1,
                           args=TrainArgs(epochs=1, batch_size=4, lr=1e-3), rewards=rewards, max_new_tokens=6,
                           temperature=1.0, gen_batch_size=24, evaluate=snapshot, seed=0,
                           generator=recording_generate)
    # each round's reference holds the weights the model had at that round's start (iterated DPO),
    # or the locked model's throughout (DPO); the loss uses the same reference as the sampler
    for r, sampler in enumerate(samplers):
        start = snapshots[r if iterated else 0]
        assert all(torch.equal(a, b) for a, b in zip(sampler.parameters(), start))
        assert not any(p.requires_grad for p in sampler.parameters())
    assert references and set(map(id, references)) == set(map(id, samplers))
    assert any(not torch.equal(a, b) for a, b in zip(snapshots[1], snapshots[0]))  # round 1 changed the model
    assert [x for x, _ in trace] == [0, 24, 48, 72]  # 2 samples per problem per epoch
    assert len(copies) == (3 if iterated else 1)
    assert samplers == ([copies[0], copies[1], copies[2]] if iterated else [copies[0]] * 3)
    assert trained == [12, 12] * 3  # both halves of every epoch's samples were scored
    # every epoch trains on each of its 12 pairs once, in batches of 4, each step clipped at grad_clip 1.0
    prompts = sorted(task.prompt(p, None) for p in problems)
    assert [len(b) for b in batches] == [4] * 9 and clips == [1.0] * 9
    assert all(sorted(sum(batches[3 * e : 3 * e + 3], [])) == prompts for e in range(3))
    assert any(not torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))  # pairs were trained on


def recording(monkeypatch, module, function):
    """Replace `module.function` by a recorder of its arguments (the plug-ins' plumbing, no training)."""
    calls = []
    monkeypatch.setattr(module, function, lambda *a, **kw: calls.append((a, kw)) or [])
    return calls


def reward_budget(n_prompts, samples):
    return Reward([f"p{i}" for i in range(n_prompts)], samples=samples, score=lambda p, c: [0.0] * len(p))


def test_iterated_dpo_plugin_spends_whole_rounds_of_its_budget(monkeypatch):
    calls = recording(monkeypatch, dpo_module, "dpo")
    context = Context(task="t", max_new_tokens=7, batch_size=11, generate=lambda *a, **kw: [])
    budget = reward_budget(1000, 2 * 320 * 3 + 639)  # 3 whole rounds of 2 x 320 samples and a part
    out = dpo_module.IteratedDPO()("model", "tokenizer", context, budget, 5)
    [(args, kw)] = calls
    assert out.model == "model" and args[:3] == ("model", "tokenizer", str)
    prompts = args[3]
    assert len(prompts) == 320 and len(set(prompts)) == 320 and set(prompts) <= set(budget.prompts)
    assert prompts == random.Random(5).sample(budget.prompts, 320)  # seeded: the same for a seed
    assert kw["epochs"] == 3 and kw["iterated"] is True and kw["beta"] == 0.1 and kw["seed"] == 5
    assert (kw["args"].lr, kw["args"].batch_size, kw["args"].epochs, kw["args"].seed) == (1.5e-4, 32, 1, 5)
    assert kw["rewards"] == budget.reward and kw["temperature"] == 1.0 and kw["evaluate"] is None
    assert (kw["max_new_tokens"], kw["gen_batch_size"], kw["generator"]) == (7, 11, context.generate)
    # fewer prompts than 320: rounds of 2 x all of them
    dpo_module.IteratedDPO()("model", "tokenizer", context, reward_budget(100, 2 * 100 * 2), 0)
    assert len(calls[1][0][3]) == 100 and calls[1][1]["epochs"] == 2
    with pytest.raises(MethodError, match=r"iterated_dpo: a round takes 2 x 100 samples; the budget has 199"):
        dpo_module.IteratedDPO()("model", "tokenizer", context, reward_budget(100, 199), 0)
    assert len(calls) == 2


def test_expert_iteration_plugin_spends_whole_rounds_of_its_budget(monkeypatch):
    calls = recording(monkeypatch, ei, "expert_iteration")
    generated = []
    context = Context(task="t", max_new_tokens=7, batch_size=11,
                      generate=lambda model, tok, prompts, **kw: generated.append(kw) or ["c"] * len(prompts))
    budget = reward_budget(2000, 640 * 2 + 639)  # 2 whole rounds of 10n = 640 samples and a part
    out = ei.ExpertIteration()("model", "tokenizer", context, budget, 3)
    [(args, kw)] = calls
    assert out.model == "model" and args == ("model", "tokenizer", str, budget.prompts)
    assert kw["rounds"] == 2 and kw["n"] == 64 and kw["eval_every"] == 2 and kw["evaluate"] is None
    assert kw["rewards"] == budget.reward and kw["seed"] == 3
    assert (kw["args"].lr, kw["args"].batch_size, kw["args"].epochs, kw["args"].seed) == (3e-4, 32, 1, 3)
    # candidates: own samples at temperature 1 with the evaluation's length and batch, a fresh seed per round
    assert kw["candidates"](["a", "b"], 0) == ["c", "c"] and kw["candidates"](["a"], 1) == ["c"]
    assert [g["temperature"] for g in generated] == [1.0, 1.0]
    assert [(g["max_new_tokens"], g["batch_size"]) for g in generated] == [(7, 11)] * 2
    assert generated[0]["seed"] != generated[1]["seed"] and generated[1]["desc"] == "sample 2"
    with pytest.raises(MethodError, match=r"expert_iteration: a round takes 10n=640 samples; the budget has 639"):
        ei.ExpertIteration()("model", "tokenizer", context, reward_budget(2000, 639), 0)
    # a split of fewer than 640 problems (SmolLM2's 300): the largest n it holds 10n of
    ei.ExpertIteration()("model", "tokenizer", context, reward_budget(300, 1280), 0)
    assert (calls[1][1]["n"], calls[1][1]["rounds"], calls[1][1]["args"].batch_size) == (30, 4, 30)
    with pytest.raises(MethodError, match=r"expert_iteration: a round takes 10n=300 samples; the budget has 299"):
        ei.ExpertIteration()("model", "tokenizer", context, reward_budget(300, 299), 0)
    with pytest.raises(MethodError, match=r"the elicitation split, which has 9: fewer than 10"):
        ei.ExpertIteration()("model", "tokenizer", context, reward_budget(9, 1280), 0)
    assert len(calls) == 2


def test_sft_plugin_trains_the_middle_epoch_count_and_counts_its_tokens(monkeypatch, tokenizer):
    calls = recording(monkeypatch, sft_module, "sft")
    context = Context(task="t", max_new_tokens=7, batch_size=11)
    for k, epochs, batch in ((4, 128, 4), (16, 32, 16), (64, 8, 32), (256, 2, 32)):
        demos = [Example(f"_ | {i % 10} |", f"{i % 10}") for i in range(k)]
        out = sft_module.SFT()("model", tokenizer, context, Demos([], examples=demos), 9)
        args, kw = calls[-1]
        assert args[0] == "model" and args[2](0) == demos and args[2](3) == demos  # the same K every epoch
        train = args[3]
        assert (train.epochs, train.batch_size, train.lr, train.seed) == (epochs, batch, 3e-4, 9), k
        assert out.model == "model" and out.train_tokens == epochs * n_tokens(tokenizer, demos) > 0


def test_training_plugins_follow_the_organisms_fine_tuning_settings(monkeypatch, tokenizer):
    """A SmolLM2 organism is fine-tuned at its lock's lr 1e-4, batch 8, with its config's epoch counts: the
    built-ins take these from Context.training, not the toy settings (the paper trains SFT elicitation and
    expert iteration as the lock; DPO at the middle of lr, lr/2, lr/4)."""
    training = Training(lr=1e-4, batch_size=8, optimizer="lion", warmup_steps=3, weight_decay=0.1,
                        epochs={16: [2, 4], 64: [1, 2, 3]})
    context = Context(task="t", max_new_tokens=7, batch_size=11, training=training,
                      generate=lambda model, tok, prompts, **kw: ["c"] * len(prompts))
    calls = recording(monkeypatch, sft_module, "sft")
    for k, epochs in ((16, 4), (64, 2), (4, 4), (24, 4)):  # a k the config does not name: the nearest named k's
        demos = [Example(f"_ | {i % 10} |", f"{i % 10}") for i in range(k)]
        sft_module.SFT()("model", tokenizer, context, Demos([], examples=demos), 9)
        train = calls[-1][0][3]
        assert (train.epochs, train.batch_size, train.lr, train.optimizer, train.warmup_steps, train.weight_decay,
                train.seed) == (epochs, min(8, k), 1e-4, "lion", 3, 0.1, 9), k
    ei_calls = recording(monkeypatch, ei, "expert_iteration")
    ei.ExpertIteration()("model", "tokenizer", context, reward_budget(2000, 640), 3)
    assert (ei_calls[0][1]["args"].lr, ei_calls[0][1]["args"].batch_size, ei_calls[0][1]["args"].optimizer) == \
        (1e-4, 8, "lion")
    dpo_calls = recording(monkeypatch, dpo_module, "dpo")
    dpo_module.IteratedDPO()("model", "tokenizer", context, reward_budget(1000, 640), 5)
    assert (dpo_calls[0][1]["args"].lr, dpo_calls[0][1]["args"].batch_size) == (5e-5, 8)


def test_dpo_without_evaluation_trains_and_samples_reproducibly(task, tokenizer, monkeypatch):
    problems = task.problems()[:8]
    seeds = []

    def sampler(model, tokenizer, prompts, **kw):
        seeds.append(kw["seed"])
        return [f"{i % 3}" for i in range(len(prompts))]  # a's and b's differ: every problem makes a pair

    def run(seed):
        model = build_model(tokenizer, hidden_size=32, layers=2, heads=2, seed=0)
        trace = dpo_module.dpo(model, tokenizer, lambda p: task.prompt(p, None), problems, epochs=2, iterated=False,
                               beta=0.1, args=TrainArgs(epochs=1, batch_size=4, lr=1e-3),
                               rewards=lambda ps, cs: [float(c == "0") for c in cs], max_new_tokens=4,
                               temperature=1.0, gen_batch_size=16, evaluate=None, seed=seed, generator=sampler)
        return trace, [p.detach().clone() for p in model.parameters()]

    (trace, first), (_, again) = run(3), run(3)
    assert trace == []  # no evaluation asked: none made
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # same seed, same model
    assert seeds[:2] == seeds[2:] and seeds[0] != seeds[1]  # a fresh, seeded draw each epoch
    run(4)
    assert seeds[4:] != seeds[:2]


def test_plugins_run_a_single_round_when_the_budget_holds_exactly_one(monkeypatch):
    dpo_calls = recording(monkeypatch, dpo_module, "dpo")
    ei_calls = recording(monkeypatch, ei, "expert_iteration")
    context = Context(task="t", max_new_tokens=4, batch_size=8, generate=lambda *a, **kw: [])
    dpo_module.IteratedDPO()("model", "tokenizer", context, reward_budget(320, 640), 0)
    ei.ExpertIteration()("model", "tokenizer", context, reward_budget(640, 640), 0)
    assert dpo_calls[0][1]["epochs"] == 1 and ei_calls[0][1]["rounds"] == 1


def test_sft_then_rl_runs_both_stages_on_exactly_one_round(monkeypatch):
    stages = []

    class First:
        def __call__(self, model, tokenizer, context, budget, seed):
            stages.append(("sft", model, seed))
            return Elicited("tuned", train_tokens=17)

    class Then(ei.ExpertIteration):  # its plan (n, rounds), a stubbed run
        def __call__(self, model, tokenizer, context, budget, seed):
            stages.append(("rl", model, seed))
            return Elicited(model)

    monkeypatch.setattr(sft_then_rl.SFTThenRL, "first", First)
    monkeypatch.setattr(sft_then_rl.SFTThenRL, "then", Then)
    budget = DemosAndReward([f"p{i}" for i in range(640)], samples=640, score=lambda p, c: [0.0] * len(p))
    out = sft_then_rl.SFTThenRL()("model", "tokenizer", Context(task="t", max_new_tokens=4, batch_size=8), budget, 2)
    assert stages == [("sft", "model", 2), ("rl", "tuned", 2)]  # RL starts from the fine-tuned model
    assert out.model == "tuned" and out.train_tokens == 17


def test_expert_iteration_needs_10n_problems_and_seeds_its_candidates(monkeypatch):
    with pytest.raises(ValueError, match=r"expert iteration needs 10n=40 problems, the elicitation split has 39"):
        ei.expert_iteration(None, None, str, list(range(39)), rounds=1, n=4, candidates=None, rewards=None,
                            args=None, evaluate=None, eval_every=1, seed=0)
    calls = recording(monkeypatch, ei, "expert_iteration")
    seeds = []
    context = Context(task="t", max_new_tokens=4, batch_size=8,
                      generate=lambda m, t, prompts, **kw: seeds.append(kw["seed"]) or [""] * len(prompts))
    for seed in (5, 5, 6):
        ei.ExpertIteration()("model", "tokenizer", context, reward_budget(640, 640), seed)
        calls[-1][1]["candidates"](["p"], 0)
    assert seeds[0] == seeds[1] != seeds[2]  # the candidates' sampling seed follows the method's seed


def test_pick_demos_draws_k_of_the_pool_reproducibly(task):
    pool = task.problems()[:20]
    strong = task.policies()["strong"]
    complete = lambda ps: [strong(p) for p in ps]  # noqa: E731
    all_of_them = pick_demos(task, pool, 20, 0, complete)  # k equal to the pool: every problem once
    assert sorted(e.prompt for e in all_of_them) == sorted(task.prompt(p, None) for p in pool)
    assert pick_demos(task, pool, 5, 1, complete) == pick_demos(task, pool, 5, 1, complete)
    assert pick_demos(task, pool, 5, 1, complete) != pick_demos(task, pool, 5, 2, complete)
    with pytest.raises(ValueError, match="k=21 demonstrations requested but the elicitation split has 20"):
        pick_demos(task, pool, 21, 0, complete)


def test_elicit_sft_needs_its_epochs_to_end_at_the_last_checkpoint(task, tokenizer, tiny_model):
    with pytest.raises(ValueError, match=r"args.epochs=3 must equal the largest checkpoint 4"):
        elicit_sft(tiny_model, tokenizer, task, [Example("a", "b")], [], epochs=[1, 2, 4],
                   args=TrainArgs(epochs=3, batch_size=1, lr=1e-3), max_new_tokens=4, eval_batch_size=8)


def test_expert_iteration_rounds_draw_seeded_problems_train_with_fresh_seeds_and_evaluate_on_schedule(task,
                                                                                                    monkeypatch):
    pool = task.problems()[:40]  # exactly 10n for n = 4: enough
    drawn, train_seeds = [], []
    monkeypatch.setattr(ei, "sft", lambda model, tok, data, args, desc: train_seeds.append(args.seed))

    def candidates(problems, r):
        drawn.append(list(problems))
        return ["0"] * len(problems)

    def run(seed, rounds=4, eval_every=3):
        return ei.expert_iteration(None, None, lambda p: task.prompt(p, None), pool, rounds=rounds, n=4,
                                   candidates=candidates, rewards=lambda ps, cs: [0.0] * len(cs),
                                   args=TrainArgs(epochs=1, batch_size=4, lr=1e-3, seed=seed),
                                   evaluate=lambda: Evaluation(0.0, 1, [], []), eval_every=eval_every, seed=seed)

    trace = run(1)
    assert [x for x, _ in trace] == [0, 120, 160]  # after round 3 (every 3) and round 4 (the last)
    assert len(set(train_seeds)) == 4  # each round trains with its own seed
    run(1)
    assert drawn[:4] == drawn[4:8] and train_seeds[:4] == train_seeds[4:8]  # the same seed, the same run
    assert drawn[0] != drawn[1]  # each round draws its 10n problems anew
    run(2)
    assert drawn[8:] != drawn[:4] and not set(train_seeds[8:]) & set(train_seeds[:4])
    assert run(1, rounds=0) == [(0, Evaluation(0.0, 1, [], []))]
