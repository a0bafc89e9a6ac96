"""The LoRA training loop on a tiny real Llama: learning, saving, reloading, merging, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragft.errors import FineTuneError
from ragft.finetune.lora.base_models import load_base_model, load_tokenizer, resolve_base_model
from ragft.finetune.lora.chat_encoding import IGNORE_INDEX, encode_file
from ragft.finetune.lora.hyperparameters import LoraHyperparameters
from ragft.finetune.lora.trainer import TrainingCancelled, train_lora

from .conftest import qa_examples, write_jsonl

FAST = dict(rank=16, learning_rate=1e-2, batch_size=4, dropout=0.0, max_length=128)


def _setup(tiny_llama: Path, tmp_path: Path, n: int = 12):
    ref = resolve_base_model(tiny_llama)
    tok = load_tokenizer(ref)
    data = encode_file(write_jsonl(tmp_path / "train.jsonl", qa_examples(n)), tok, max_length=128)
    return ref, tok, data


def _generate(model, tok, question: str) -> str:
    import torch

    prompt = tok.apply_chat_template(
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": question}],
        tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)


def test_labels_cover_only_the_assistant_answer(tiny_llama: Path, tmp_path: Path) -> None:
    _, tok, data = _setup(tiny_llama, tmp_path, n=2)
    ex = data[0]
    trained = [t for t, label in zip(ex.input_ids, ex.labels) if label != IGNORE_INDEX]
    assert tok.decode(trained) == "The fox badge is red.<|im_end|>\n"
    assert ex.labels[: ex.n_tokens - len(trained)] == (IGNORE_INDEX,) * (ex.n_tokens - len(trained))


def test_loss_decreases_adapter_saves_reloads_and_merges(tiny_llama: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel

    ref, tok, data = _setup(tiny_llama, tmp_path)
    base = load_base_model(ref)
    before = _generate(base, tok, "What colour is the owl badge?")
    events: list[tuple[str, dict]] = []
    hp = LoraHyperparameters(epochs=6, **FAST)
    result = train_lora(base, tok, data, data[:4], hyperparameters=hp, work_dir=tmp_path / "run",
                        on_progress=lambda kind, msg, d: events.append((kind, dict(d))))
    losses = [d["train_loss"] for kind, d in events if kind == "step"]
    assert len(losses) == result.steps == 6 * 3
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    valid = [d["valid_loss"] for kind, d in events if kind == "validation"]
    assert len(valid) == 6 and valid[-1] < valid[0]
    assert sum(1 for kind, _ in events if kind == "checkpoint") == 6
    assert result.tokens == 6 * sum(ex.n_tokens for ex in data)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    after = _generate(result.model, tok, "What colour is the owl badge?")
    assert after != before

    # Reload the saved adapter on a fresh base: same output; merged into the base: same again.
    reloaded = PeftModel.from_pretrained(load_base_model(ref), str(result.adapter_dir))
    assert _generate(reloaded, tok, "What colour is the owl badge?") == after
    merged = reloaded.merge_and_unload()
    assert not isinstance(merged, PeftModel)
    assert _generate(merged, tok, "What colour is the owl badge?") == after
    prompt = torch.tensor([data[1].input_ids])
    with torch.no_grad():
        assert torch.allclose(merged(prompt).logits, result.model(prompt).logits, atol=1e-4)


def test_gradient_checkpointing_trains_the_same(tiny_llama: Path, tmp_path: Path) -> None:
    ref, tok, data = _setup(tiny_llama, tmp_path)
    runs = []
    for checkpointing in (False, True):
        hp = LoraHyperparameters(epochs=1, gradient_checkpointing=checkpointing, **FAST)
        losses: list[float] = []
        train_lora(load_base_model(ref), tok, data, hyperparameters=hp,
                   work_dir=tmp_path / f"gc-{checkpointing}",
                   on_progress=lambda k, m, d: losses.append(d["train_loss"]) if k == "step" else None)
        runs.append(losses)
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)


def test_resume_continues_from_the_checkpoint_exactly(tiny_llama: Path, tmp_path: Path) -> None:
    ref, tok, data = _setup(tiny_llama, tmp_path)
    hp = LoraHyperparameters(epochs=3, **FAST)
    straight = train_lora(load_base_model(ref), tok, data, hyperparameters=hp,
                          work_dir=tmp_path / "straight")

    # Stop during epoch 2 (after the epoch-1 checkpoint), then resume in a new model.
    calls = {"n": 0}

    def stop_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # 3 steps per epoch: step 5 is in epoch 2

    with pytest.raises(TrainingCancelled):
        train_lora(load_base_model(ref), tok, data, hyperparameters=hp, work_dir=tmp_path / "cut",
                   should_stop=stop_in_epoch_two)
    assert not (tmp_path / "cut" / "adapter").exists()
    kinds: list[str] = []
    resumed = train_lora(load_base_model(ref), tok, data, hyperparameters=hp,
                         work_dir=tmp_path / "cut", on_progress=lambda k, m, d: kinds.append(k))
    assert resumed.resumed_from_epoch == 1 and kinds[0] == "resume"
    assert kinds.count("step") == 6 and resumed.steps == straight.steps == 9
    assert resumed.tokens == straight.tokens
    assert resumed.train_loss == pytest.approx(straight.train_loss, rel=1e-4)

    other = LoraHyperparameters(epochs=3, **{**FAST, "rank": 4})
    with pytest.raises(FineTuneError, match="other training data or hyperparameters"):
        train_lora(load_base_model(ref), tok, data, hyperparameters=other,
                   work_dir=tmp_path / "cut")
