"""Circuit breaking by representation rerouting (RR: Zou et al. 2024, "Improving Alignment and
Robustness with Circuit Breakers", Algorithm 1), applied to a password-locked model as the
Elicitation Game does (Hofstätter et al. 2025): one readable loop.

Two copies of a locked model: `frozen` (the plain lock, never updated) and `model` (trained,
all weights; LoRA adapters if the caller wrapped it). Step t of T draws a batch of

  - rerouted examples: prompts without the password (none, or a wrong one) + pi_weak's completions;
  - retained examples: prompts with the password + pi_strong's completions;

and minimises

    L(t)     = c_rr(t) * L_rr + c_retain(t) * L_retain [+ nll * NLL]
    c_rr     = alpha * (1 - t / (2T))       decays from alpha to alpha / 2
    c_retain = alpha * t / (2T)             rises from 0 to alpha / 2
    L_rr     = mean over the chosen layers and every token of ReLU(cos(h_model, h_frozen))
    L_retain = mean over all layers and every token of ||h_model - h_frozen||_2
               (`relative_retain`: each term / ||h_frozen|| x the layer's median ||h_frozen||)

h is the hidden state (B, T, H) of a layer on the example's prompt and completion tokens
(padding excluded). The rerouting loss pushes the no-password representations at the chosen
layers orthogonal to (or against) the plain lock's, so an elicitation method that nudges the
no-password path toward the password path has no shared circuit to find; the retain loss keeps
every layer of the password path where it was, so the capability survives behind the password.
`nll` (default 0: the published recipe) adds the usual completion NLL on both kinds of examples,
which keeps the no-password outputs pi_weak's while their representations move.

Layers are transformer blocks, 0-based: layer i is the output of block i (`hidden_states[i + 1]`
of a transformers model; the last block's entry is after the final norm). The retain loss also
covers `hidden_states[0]`, the embeddings, as the published code does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pwlock.errors import ConfigError, TrainingError
from pwlock.experiments.schedule import use_idle_cores
from pwlock.formatting import prompt_ids
from pwlock.train.data import collate
from pwlock.train.losses import completion_nll
from pwlock.types import Example


@dataclass(frozen=True)
class RerouteArgs:
    """Settings of one circuit-breaking run (plain values; suites build these)."""

    layers: tuple[int, ...]
    """The blocks (0-based) whose outputs are rerouted on no-password examples."""
    steps: int = 300
    """T: optimizer steps; the coefficients' schedule spans them."""
    alpha: float = 10.0
    """Scale of both coefficients (the paper's alpha)."""
    batch_size: int = 32
    """Rerouted examples per step, and as many retained ones."""
    lr: float = 1e-4
    nll: float = 0.0
    """Weight of the completion NLL on both kinds of examples (0: the published recipe)."""
    centre: bool = False
    """Cosines of centred states (`rerouting_loss`); False: raw states, the published recipe."""
    relative_retain: bool = False
    """Retain distances relative to each token's norm (`retain_loss`); False: raw L2, the published recipe."""
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0


def coefficients(step: int, total: int, alpha: float) -> tuple[float, float]:
    """(c_rr, c_retain) at step `step` (1-based) of `total`: the paper's schedule."""
    return alpha * (1 - step / (2 * total)), alpha * step / (2 * total)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values (L, B, T) over the positions where mask (B, T) is 1, in every layer."""
    weights = mask.to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1)


def real_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each layer's median over the real tokens: values (L, B, T, ...), mask (B, T) -> (L, ...)."""
    return values[:, mask.bool()].float().median(dim=1).values


def centre_of(frozen: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each layer's per-dimension median of the frozen states over the real tokens: frozen (L, B, T, H),
    mask (B, T) -> (L, 1, 1, H). A median, not a mean: a row's first token can carry a norm 100 times
    the others' (an attention sink: 22,000 against 230 at SmolLM2-135M's block 20) and would drag a mean."""
    return real_median(frozen, mask)[:, None, None, :]


def rerouting_loss(trained: torch.Tensor, frozen: torch.Tensor, mask: torch.Tensor, centre: bool = False,
                   ) -> torch.Tensor:
    """ReLU of the cosine similarity of each token's hidden state to the frozen model's, averaged
    over layers and real tokens: trained, frozen (L, B, T, H), mask (B, T) -> scalar. Zero once
    every state is orthogonal to (or points away from) the frozen one.

    `centre`: both states minus the frozen ones' median (`centre_of`) before the cosine. A model with a
    massive activation (a dimension near-constant and large on every token: SmolLM2-135M's 507 carries
    ~100 of a state's norm of ~150 at block 10) has a raw cosine of ~0.6 between any two tokens' states,
    so the raw loss can only fall by moving that dimension, which the rest of the model relies on;
    centred, two tokens' states have cosine ~0 and the loss measures what the tokens carry."""
    return masked_mean(F.relu(token_cosines(trained, frozen, mask, centre)), mask)


def token_cosines(trained: torch.Tensor, frozen: torch.Tensor, mask: torch.Tensor, centre: bool) -> torch.Tensor:
    """Each token's cosine between the two models' states (centred: both minus `centre_of` the frozen
    ones): (L, B, T, H) twice, mask (B, T) -> (L, B, T)."""
    trained, frozen = trained.float(), frozen.float()
    if centre:
        middle = centre_of(frozen, mask)
        trained, frozen = trained - middle, frozen - middle
    return F.cosine_similarity(trained, frozen, dim=-1)


def retain_loss(trained: torch.Tensor, frozen: torch.Tensor, mask: torch.Tensor, relative: bool = False,
                ) -> torch.Tensor:
    """L2 distance of each token's hidden state to the frozen model's, averaged over layers and
    real tokens: trained, frozen (L, B, T, H), mask (B, T) -> scalar.

    `relative`: each distance divided by the token's frozen norm and multiplied by the layer's median
    frozen norm over the real tokens. A median token weighs as in the raw L2, but a sink token whose
    norm is 100 times the others' (SmolLM2-135M's first token) no longer dominates the loss, so the
    retain loss holds the tokens that carry the password path."""
    frozen = frozen.float()
    distance = (trained.float() - frozen).norm(dim=-1)  # (L, B, T)
    if relative:
        norms = frozen.norm(dim=-1)
        distance = distance / norms.clamp(min=1e-6) * real_median(norms, mask)[:, None, None]
    return masked_mean(distance, mask)


def check_layers(layers: Sequence[int], n_layers: int) -> None:
    """A clear error naming `layers` for an empty list, a repeat or a block the model lacks."""
    if not layers:
        raise ConfigError("layers is empty: name at least one block to reroute (0-based)")
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise ConfigError(f"layers {bad} out of range: the model has {n_layers} blocks (0-{n_layers - 1})")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"layers {list(layers)} names a block twice")


def hidden_states(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's hidden states, (L + 1, B, T, H) with the embeddings first, and the logits."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True,
                use_cache=False)
    return torch.stack(out.hidden_states), out.logits


def cycle(examples: Sequence[Example], batch_size: int, rng: random.Random) -> Iterator[list[Example]]:
    """An endless stream of batches, reshuffled at each pass (the run takes `steps` of them, which
    may be more or fewer than one pass)."""
    while True:
        order = list(examples)
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def circuit_break(
    model: PreTrainedModel,
    frozen: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reroute: Sequence[Example],
    retain: Sequence[Example],
    args: RerouteArgs,
    *,
    desc: str = "circuit breaking",
) -> list[dict[str, float]]:
    """Train `model` in place (a copy of the locked model `frozen`); returns each step's coefficients
    and losses (`c_rr`, `c_retain`, `rr`, `retain`, `nll`)."""
    n_layers = model.config.num_hidden_layers
    check_layers(args.layers, n_layers)
    for name, examples in (("reroute", reroute), ("retain", retain)):
        if len(examples) < args.batch_size:
            raise ConfigError(f"{desc}: {len(examples)} {name} examples, fewer than batch_size {args.batch_size}")
    chosen = torch.tensor([i + 1 for i in args.layers])  # hidden_states[0] is the embeddings
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    frozen.eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    device = next(model.parameters()).device
    rerouted, retained = cycle(reroute, args.batch_size, rng), cycle(retain, args.batch_size, rng)
    model.train()
    history = []
    bar = tqdm(total=args.steps, desc=desc, unit="step", leave=False, dynamic_ncols=True)
    for step in range(1, args.steps + 1):
        use_idle_cores()
        c_rr, c_retain = coefficients(step, args.steps, args.alpha)
        bad = {k: v.to(device) for k, v in collate(tokenizer, next(rerouted)).items()}
        good = {k: v.to(device) for k, v in collate(tokenizer, next(retained)).items()}
        with torch.no_grad():
            frozen_bad = hidden_states(frozen, bad)[0][chosen]  # (len(layers), B, T, H)
            frozen_good = hidden_states(frozen, good)[0]  # (L + 1, B, T, H)
        states_bad, logits_bad = hidden_states(model, bad)
        states_good, logits_good = hidden_states(model, good)
        rr = rerouting_loss(states_bad[chosen], frozen_bad, bad["attention_mask"], args.centre)
        keep = retain_loss(states_good, frozen_good, good["attention_mask"], args.relative_retain)
        loss = c_rr * rr + c_retain * keep
        nll = torch.zeros(())
        if args.nll > 0:
            nll = (completion_nll(logits_bad, bad["labels"]) + completion_nll(logits_good, good["labels"])) / 2
            loss = loss + args.nll * nll
        value = loss.item()
        if not math.isfinite(value):  # stop before a NaN step poisons the weights that would be saved
            raise TrainingError(f"{desc}: the loss is {value} at step {step} of {args.steps} (lr {args.lr:g})")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append({"c_rr": c_rr, "c_retain": c_retain, "rr": rr.item(), "retain": keep.item(),
                        "nll": nll.item()})
        bar.update()
        bar.set_postfix(rr=f"{rr.item():.3f}", retain=f"{keep.item():.3f}", refresh=False)
    bar.close()
    model.eval()
    return history


def hidden_cosine(model: PreTrainedModel, frozen: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                  prompts: Sequence[str], layers: Sequence[int], batch_size: int = 256, centre: bool = False,
                  ) -> float:
    """Mean cosine similarity of `model`'s hidden states to `frozen`'s at `layers` over every token
    of `prompts` (as the model sees them before it generates; centred as the rerouting loss was):
    near 1 where rerouting left the representations alone, near 0 or below where it moved them."""
    check_layers(layers, model.config.num_hidden_layers)
    chosen = torch.tensor([i + 1 for i in layers])
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    ids = prompt_ids(tokenizer, prompts)
    for start in range(0, len(ids), batch_size):
        rows = ids[start : start + batch_size]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # right padding: each prompt keeps positions 0..n-1
            input_ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        batch = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
        with torch.no_grad():
            cos = token_cosines(hidden_states(model, batch)[0][chosen], hidden_states(frozen, batch)[0][chosen],
                                batch["attention_mask"], centre)  # (len(layers), B, T)
        weights = batch["attention_mask"].to(cos.dtype).expand_as(cos)
        total += (cos * weights).sum().item()
        count += weights.sum().item()
    return total / max(count, 1.0)
