"""``lora:`` model ids served by llama.cpp: locating the adapter and its base, the GGUF cache,
the refusals, and — with a real server — ``ft_rag`` answering through base + adapter from a
registered version, closed with the run.

Adapters here are written in peft's file layout with a ``lora.json`` manifest naming the base,
as the LoRA fine-tuning backend publishes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ragft.components import Components, bare_environment
from ragft.config import load_config
from ragft.errors import ConfigError, ModelUnavailableError, RagftError
from ragft.finetune.registry import ModelRegistry
from ragft.metering.meter import Meter
from ragft.models.lora_server import (
    ServedChatModel,
    base_gguf_of,
    gguf_adapter_for,
    lora_adapter_dir,
)

MODEL_ID = "lora:support:ftjob-lora-0123abcd"
# SmolLM2-135M: hidden 576, 3 KV heads of 64, FFN 1536, 30 layers.
SHAPES = {"self_attn.q_proj": (576, 576), "self_attn.v_proj": (192, 576)}


def publish_adapter(models_dir: Path, base: Path | None, *, std: float = 0.05, seed: int = 0,
                    gguf_file: bool = True) -> Path:
    """An adapter directory as the LoRA backend publishes it (peft files + lora.json)."""
    from safetensors.numpy import save_file

    directory = lora_adapter_dir(models_dir, MODEL_ID)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(30):
        for module, (out_dim, in_dim) in SHAPES.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, 0.04, (8, in_dim)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.normal(0, std, (out_dim, 8)).astype(np.float32)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}))
    base_model = ({"directory": str(base.parent), "gguf_file": base.name if gguf_file else None, "name": "base"}
                  if base is not None else {"directory": "/nowhere", "gguf_file": None, "name": "hf"})
    (directory / "lora.json").write_text(json.dumps({"model_id": MODEL_ID, "base_model": base_model}))
    return directory


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from ragft.models.llamacpp import gguf_path_smollm2

    try:
        return gguf_path_smollm2()
    except RagftError as exc:
        pytest.skip(str(exc))


def test_model_ids_name_their_adapter_directory(tmp_path: Path) -> None:
    assert lora_adapter_dir(tmp_path, MODEL_ID) == tmp_path / "lora" / "adapters" / "ftjob-lora-0123abcd"
    for bad in ("lora:", "lora:onlysuffix", "gpt-4.1-mini"):
        with pytest.raises(ConfigError, match="lora:SUFFIX:JOB_ID"):
            lora_adapter_dir(tmp_path, bad)


def test_a_missing_adapter_or_base_says_what_to_do(tmp_path: Path, smollm2: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="finetune start FILE --backend lora"):
        base_gguf_of(lora_adapter_dir(tmp_path, MODEL_ID))
    hf = publish_adapter(tmp_path / "hf", None)
    with pytest.raises(ConfigError, match="Hugging Face model directory.*vLLM.*--enable-lora"):
        base_gguf_of(hf)
    gone = publish_adapter(tmp_path / "gone", tmp_path / "deleted.gguf")
    with pytest.raises(ModelUnavailableError, match="base GGUF .*deleted.gguf is missing"):
        base_gguf_of(gone)
    assert base_gguf_of(publish_adapter(tmp_path / "ok", smollm2)) == smollm2


def test_the_gguf_form_is_exported_once_and_follows_the_weights(tmp_path: Path, smollm2: Path) -> None:
    cache = tmp_path / "cache"
    adapter = publish_adapter(tmp_path / "models", smollm2, seed=1)
    first = gguf_adapter_for(adapter, smollm2, cache)
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))
    assert gguf_adapter_for(adapter, smollm2, cache) == first
    assert first.stat().st_mtime_ns == stamp - 10**9  # reused, not rewritten
    publish_adapter(tmp_path / "models", smollm2, seed=2)  # retrained: new weights
    second = gguf_adapter_for(adapter, smollm2, cache)
    assert second != first and second.is_file()


@pytest.mark.llamacpp
def test_ft_rag_answers_through_llama_cpp_with_a_registered_lora_version(tmp_path: Path, smollm2: Path) -> None:
    pytest.importorskip("xllamacpp")
    from ragft.strategies import build_strategy

    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "travel.md").write_text("# Travel\nThe meal per diem is $75 per day for full travel days.\n")
    cfg = load_config(env={}, overrides={
        "home": str(tmp_path / "home"), "index.corpus": str(corpus),
        "models.embedding": "local/hashing-256", "models.finetuned": "registry:support",
        "strategy.name": "ft_rag", "strategy.max_tokens": 12,
    })
    publish_adapter(cfg.home_path / "models", smollm2)
    ModelRegistry(cfg.home_path / "registry.json").register(
        "support", model_id=MODEL_ID, base_model="smollm2", purpose="generator", backend="lora")
    ModelRegistry(cfg.home_path / "registry.json").promote("support", 1)

    meter = Meter()
    with Components(cfg, meter) as parts:
        parts.knowledge_base().sync(corpus, progress=False)
        model = parts.chat("registry:support")
        assert isinstance(model, ServedChatModel) and model.name == MODEL_ID
        server = model.server
        assert server.running and server.lora_adapters[0][0].suffix == ".gguf"
        strategy = build_strategy(cfg, meter=meter, parts=parts)
        answer = strategy.answer("What is the meal per diem?")
    assert not server.running  # the run's close() stopped the server
    assert f"-> {MODEL_ID}" in str(answer.route)
    generated = [c for c in answer.calls if c.usage.model == MODEL_ID]
    assert generated and generated[0].usage.source == "reported" and generated[0].usage.input_tokens > 0
    assert answer.cost_usd == 0.0  # a local adapter is free, but counted


def test_without_a_base_url_or_key_the_lora_builder_needs_neither(tmp_path: Path) -> None:
    # Building fails on the missing adapter, not on credentials: the server it would start
    # is the endpoint.
    env = bare_environment(load_config(env={}, overrides={"home": str(tmp_path)}))
    from ragft.models.registry import build_chat_model

    with pytest.raises(ModelUnavailableError, match="no LoRA adapter"):
        build_chat_model(MODEL_ID, env)


def test_the_vllm_example_config_asks_the_gpu_server_for_the_adapter_by_name() -> None:
    # vLLM serves an adapter under its --lora-modules name on the OpenAI API: the config names
    # it as the fine-tuned model and the ordinary OpenAI backend talks to the vLLM server.
    from ragft.models.openai import OpenAIChatModel
    from ragft.models.registry import build_chat_model

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "examples" / "configs" / "vllm_lora.toml", env={})
    assert cfg.strategy.name == "ft_rag" and cfg.models.finetuned == "squad-p1"
    model = build_chat_model(cfg.models.finetuned, bare_environment(cfg))
    assert isinstance(model, OpenAIChatModel) and not isinstance(model, ServedChatModel)
    assert model.name == "squad-p1"
    assert str(model._client.base_url).rstrip("/") == "http://gpu-box:8000/v1"
