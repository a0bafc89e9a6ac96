"""GGUF LoRA export: naming, metadata, Llama's Q/K permutation, refusals — and the adapter in
the real llama.cpp server.

The unit tests use a tiny Llama base GGUF written here (zero weights: only its metadata and
tensor shapes matter to the exporter) and peft-layout adapter directories. The ``llamacpp``
tests load SmolLM2-135M with an exported adapter in a real server; the ``slow`` one compares
llama.cpp + adapter with transformers + peft + the same adapter, token by token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragft.errors import AdapterExportError, ModelUnavailableError, RagftError
from ragft.models.gguf_adapter import (
    _permute_rows,
    export_lora_gguf,
    gguf_tensor_name,
    read_gguf_adapter,
)

gguf = pytest.importorskip("gguf")



#: Hugging Face module -> (attribute path in the layer, GGUF tensor).
MODULES = {
    "q_proj": ("self_attn.q_proj", "attn_q"),
    "k_proj": ("self_attn.k_proj", "attn_k"),
    "v_proj": ("self_attn.v_proj", "attn_v"),
    "o_proj": ("self_attn.o_proj", "attn_output"),
    "gate_proj": ("mlp.gate_proj", "ffn_gate"),
    "up_proj": ("mlp.up_proj", "ffn_up"),
    "down_proj": ("mlp.down_proj", "ffn_down"),
}


def llama_shapes(hidden: int, n_head: int, n_kv: int, ffn: int) -> dict[str, tuple[int, int]]:
    """(out, in) of each adapted projection of a Llama layer."""
    kv = hidden // n_head * n_kv
    return {
        "q_proj": (hidden, hidden),
        "k_proj": (kv, hidden),
        "v_proj": (kv, hidden),
        "o_proj": (hidden, hidden),
        "gate_proj": (ffn, hidden),
        "up_proj": (ffn, hidden),
        "down_proj": (hidden, ffn),
    }


def write_base_gguf(
    path: Path, *, arch: str = "llama", layers: int = 2, hidden: int = 16, n_head: int = 4, n_kv: int = 2, ffn: int = 32
) -> Path:
    """A structurally valid tiny base GGUF (metadata + zero f32 weights) for the exporter."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(layers)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    for layer in range(layers):
        for module, (out_dim, in_dim) in llama_shapes(hidden, n_head, n_kv, ffn).items():
            name = f"blk.{layer}.{MODULES[module][1]}.weight"
            writer.add_tensor(name, np.zeros((out_dim, in_dim), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_peft_adapter(
    directory: Path,
    shapes: Mapping[str, tuple[int, int]],
    *,
    layers: int,
    r: int = 4,
    alpha: float = 8.0,
    modules: Iterable[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    std: float = 0.02,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """A peft LoRA adapter directory with random (seeded) A and B matrices of std ``std``."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    modules = list(modules)
    tensors: dict[str, np.ndarray] = {}
    for layer in range(layers):
        for module in modules:
            out_dim, in_dim = shapes[module]
            key = f"base_model.model.model.layers.{layer}.{MODULES[module][0]}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, 1 / np.sqrt(in_dim), (r, in_dim)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.normal(0, std, (out_dim, r)).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": modules,
           "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False, **(config or {})}
    (directory / "adapter_config.json").write_text(json.dumps(cfg))
    return directory

# --------------------------------------------------------------------------- fixtures

TINY = {"layers": 2, "hidden": 16, "n_head": 4, "n_kv": 2, "ffn": 32}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_base_gguf(tmp_path / "tiny-llama.gguf", **TINY)


def tiny_adapter(directory: Path, **kwargs: Any) -> Path:
    shapes = llama_shapes(TINY["hidden"], TINY["n_head"], TINY["n_kv"], TINY["ffn"])
    return write_peft_adapter(directory, shapes, layers=TINY["layers"], **kwargs)


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a GGUF file, in numpy (out, in) order."""
    reader = gguf.GGUFReader(str(path))
    return {t.name: np.array(t.data).reshape(tuple(reversed(t.shape.tolist()))) for t in reader.tensors}


# --------------------------------------------------------------------------- naming and metadata


def test_peft_keys_map_to_llama_cpp_tensor_names() -> None:
    assert gguf_tensor_name("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight") == (
        "blk.3.attn_q.weight.lora_a"
    )
    assert gguf_tensor_name("base_model.model.model.layers.12.mlp.down_proj.lora_B.weight") == (
        "blk.12.ffn_down.weight.lora_b"
    )
    assert gguf_tensor_name("model.layers.0.self_attn.o_proj.lora_B.weight") == "blk.0.attn_output.weight.lora_b"


@pytest.mark.parametrize(
    "key",
    [
        "base_model.model.lm_head.lora_A.weight",
        "base_model.model.model.embed_tokens.lora_embedding_A",
        "base_model.model.model.layers.0.input_layernorm.weight",
    ],
)
def test_modules_llama_cpp_cannot_adapt_are_refused_by_name(key: str) -> None:
    with pytest.raises(AdapterExportError, match="target_modules"):
        gguf_tensor_name(key)


def test_export_writes_a_lora_adapter_llama_cpp_recognises(tmp_path: Path, base: Path) -> None:
    adapter = tiny_adapter(tmp_path / "adapter", r=4, alpha=8.0, modules=list(MODULES))
    written = export_lora_gguf(adapter, base, tmp_path / "out" / "adapter.gguf", name="tiny-test")
    reader = gguf.GGUFReader(str(written.path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields["general.architecture"] == "llama"
    assert fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(8.0)
    assert fields["general.name"] == "tiny-test"
    # 2 layers x 7 projections x (A, B)
    assert written.tensors == 28 and len(reader.tensors) == 28
    assert read_gguf_adapter(written.path) == written
    shapes = {t.name: tuple(int(d) for d in t.shape.tolist()) for t in reader.tensors}
    # GGML order: lora_a is (in, rank), lora_b is (rank, out), matching the base (in, out).
    assert shapes["blk.0.attn_k.weight.lora_a"] == (16, 4)
    assert shapes["blk.0.attn_k.weight.lora_b"] == (4, 8)
    assert shapes["blk.1.ffn_down.weight.lora_a"] == (32, 4)
    assert shapes["blk.1.ffn_down.weight.lora_b"] == (4, 16)


def test_q_and_k_lora_b_rows_are_permuted_like_the_base_weights_and_nothing_else(tmp_path: Path, base: Path) -> None:
    from safetensors.numpy import load_file

    adapter = tiny_adapter(tmp_path / "adapter", modules=list(MODULES))
    peft = load_file(str(adapter / "adapter_model.safetensors"))
    out = tensors_of(export_lora_gguf(adapter, base, tmp_path / "a.gguf").path)
    layer = "base_model.model.model.layers.1"
    q_b = peft[f"{layer}.self_attn.q_proj.lora_B.weight"]
    k_b = peft[f"{layer}.self_attn.k_proj.lora_B.weight"]
    assert np.array_equal(out["blk.1.attn_q.weight.lora_b"], _permute_rows(q_b, TINY["n_head"]))
    assert np.array_equal(out["blk.1.attn_k.weight.lora_b"], _permute_rows(k_b, TINY["n_kv"]))
    assert not np.array_equal(out["blk.1.attn_q.weight.lora_b"], q_b)
    # A acts on the input side, which the permutation does not touch; other modules are copied.
    assert np.array_equal(out["blk.1.attn_q.weight.lora_a"], peft[f"{layer}.self_attn.q_proj.lora_A.weight"])
    assert np.array_equal(out["blk.1.attn_v.weight.lora_b"], peft[f"{layer}.self_attn.v_proj.lora_B.weight"])
    assert np.array_equal(out["blk.1.ffn_up.weight.lora_b"], peft[f"{layer}.mlp.up_proj.lora_B.weight"])


def test_the_permutation_is_the_one_transformers_undoes_when_loading_a_gguf() -> None:
    # transformers de-permutes Q/K when it reads a Llama GGUF; our permutation must be its inverse
    # (per head count, including grouped-query K), or an adapter trained on those weights would
    # land on the wrong rotary dimensions in llama.cpp.
    processor = pytest.importorskip("transformers.modeling_gguf_pytorch_utils").LlamaTensorProcessor
    rows = np.arange(9 * 64 * 3, dtype=np.float32).reshape(9 * 64, 3)
    undo = processor()._reverse_permute_weights
    assert np.array_equal(undo(_permute_rows(rows, 9), 9, 9), rows)
    kv_rows = rows[: 3 * 64]
    assert np.array_equal(undo(_permute_rows(kv_rows, 3), 9, 3), kv_rows)
    assert not np.array_equal(_permute_rows(rows, 9), rows)


def test_rslora_scale_is_written_as_an_equivalent_alpha(tmp_path: Path, base: Path) -> None:
    adapter = tiny_adapter(tmp_path / "adapter", r=4, alpha=8.0, config={"use_rslora": True})
    written = export_lora_gguf(adapter, base, tmp_path / "a.gguf")
    # peft scales by alpha/sqrt(r) = 4; llama.cpp by alpha'/r, so alpha' = 16.
    assert written.alpha == pytest.approx(16.0)


def test_f16_halves_the_tensors(tmp_path: Path, base: Path) -> None:
    adapter = tiny_adapter(tmp_path / "adapter")
    f32 = export_lora_gguf(adapter, base, tmp_path / "a32.gguf")
    f16 = export_lora_gguf(adapter, base, tmp_path / "a16.gguf", dtype="f16")
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(f16.path)).tensors}
    assert types == {"F16"}
    assert f16.path.stat().st_size < f32.path.stat().st_size


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"rank_pattern": {"q_proj": 8}}, "rank_pattern"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"peft_type": "IA3"}, "only LoRA"),
    ],
)
def test_adapters_llama_cpp_cannot_apply_are_refused(
    tmp_path: Path, base: Path, config: dict[str, Any], message: str
) -> None:
    adapter = tiny_adapter(tmp_path / "adapter", config=config)
    with pytest.raises(AdapterExportError, match=message):
        export_lora_gguf(adapter, base, tmp_path / "a.gguf")
    assert not (tmp_path / "a.gguf").exists()


def test_an_adapter_for_another_base_is_refused_with_the_tensor_named(tmp_path: Path, base: Path) -> None:
    wider = llama_shapes(32, 4, 2, 64)  # trained on a model with hidden size 32
    adapter = write_peft_adapter(tmp_path / "adapter", wider, layers=2)
    with pytest.raises(AdapterExportError, match=r"blk\.0\.attn_.*another base model"):
        export_lora_gguf(adapter, base, tmp_path / "a.gguf")
    deeper = write_peft_adapter(tmp_path / "deeper", llama_shapes(16, 4, 2, 32), layers=3)
    with pytest.raises(AdapterExportError, match="has no tensor blk.2"):
        export_lora_gguf(deeper, base, tmp_path / "a.gguf")
    assert not list(tmp_path.glob("*a.gguf*.tmp")) and not (tmp_path / "a.gguf").exists()


def test_a_base_of_an_unsupported_architecture_is_refused_with_alternatives(tmp_path: Path) -> None:
    qwen = write_base_gguf(tmp_path / "qwen.gguf", arch="qwen2", **TINY)
    adapter = tiny_adapter(tmp_path / "adapter")
    with pytest.raises(AdapterExportError, match="qwen2.*vLLM"):
        export_lora_gguf(adapter, qwen, tmp_path / "a.gguf")


def test_missing_or_broken_inputs_say_what_is_expected(tmp_path: Path, base: Path) -> None:
    with pytest.raises(AdapterExportError, match="adapter_config.json not found.*save_pretrained"):
        export_lora_gguf(tmp_path / "nothing", base, tmp_path / "a.gguf")
    adapter = tiny_adapter(tmp_path / "adapter")
    with pytest.raises(AdapterExportError, match="base GGUF not found"):
        export_lora_gguf(adapter, tmp_path / "missing.gguf", tmp_path / "a.gguf")
    (adapter / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(AdapterExportError, match="not a readable safetensors"):
        export_lora_gguf(adapter, base, tmp_path / "a.gguf")
    with pytest.raises(AdapterExportError, match="not a LoRA adapter"):
        read_gguf_adapter(base)


def test_a_failed_export_keeps_the_previous_file(tmp_path: Path, base: Path) -> None:
    good = tiny_adapter(tmp_path / "good")
    target = export_lora_gguf(good, base, tmp_path / "a.gguf").path
    before = target.read_bytes()
    bad = tiny_adapter(tmp_path / "bad", config={"use_dora": True})
    with pytest.raises(AdapterExportError):
        export_lora_gguf(bad, base, target)
    assert target.read_bytes() == before


# --------------------------------------------------------------------------- llama.cpp, for real

SMOLLM2 = {"hidden": 576, "n_head": 9, "n_kv": 3, "ffn": 1536, "layers": 30}
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]


def smollm2_adapter(directory: Path, *, std: float, seed: int = 0) -> Path:
    # Q (permuted on export) and V (copied): both paths, a small file, a quick server start.
    shapes = llama_shapes(SMOLLM2["hidden"], SMOLLM2["n_head"], SMOLLM2["n_kv"], SMOLLM2["ffn"])
    return write_peft_adapter(directory, shapes, layers=SMOLLM2["layers"], r=8, alpha=16.0,
                              modules=["q_proj", "v_proj"], std=std, seed=seed)


@pytest.fixture(scope="module")
def smollm2() -> Path:
    pytest.importorskip("xllamacpp")
    from ragft.models.llamacpp import gguf_path_smollm2

    try:
        return gguf_path_smollm2()
    except RagftError as exc:
        pytest.skip(str(exc))


def served_answers(base: Path, adapters: list[Path]) -> dict[str, Any]:
    """QUESTION answered through ragft's OpenAI backend by a llama.cpp server with ``adapters``:
    ``complete`` (with logprobs) and ``stream``; with an adapter also ``unscaled``, the raw
    server asked to apply it at scale 0 (llama.cpp's per-request ``lora`` field)."""
    import httpx

    from ragft.models.llamacpp import LlamaCppServer
    from ragft.models.openai import OpenAIChatModel, make_client

    out: dict[str, Any] = {}
    with LlamaCppServer(base, n_ctx=512, lora_adapters=adapters) as server:
        with make_client(api_key=None, base_url=server.base_url, timeout=120.0, max_retries=0) as client:
            model = OpenAIChatModel(server.model, client=client)
            out["complete"] = model.complete(QUESTION, max_tokens=8, logprobs=True)
            if adapters:
                out["stream"] = "".join(model.stream(QUESTION, max_tokens=8))
                body = {"model": server.model, "messages": QUESTION, "max_tokens": 8, "temperature": 0,
                        "lora": [{"id": 0, "scale": 0.0}]}
                reply = httpx.post(server.base_url + "/chat/completions", json=body, timeout=120).json()
                out["unscaled"] = reply["choices"][0]["message"]["content"]
    return out


@pytest.mark.llamacpp
def test_the_gguf_adapter_loads_in_llama_cpp_and_changes_its_output(tmp_path: Path, smollm2: Path) -> None:
    adapter = export_lora_gguf(smollm2_adapter(tmp_path / "peft", std=0.2), smollm2, tmp_path / "adapter.gguf")
    assert adapter.rank == 8 and adapter.tensors == 30 * 2 * 2

    base = served_answers(smollm2, [])["complete"]
    tuned = served_answers(smollm2, [adapter.path])
    answer = tuned["complete"]

    assert base.text.strip() and answer.text.strip()
    assert answer.text != base.text  # the adapter is applied...
    assert tuned["unscaled"] == base.text  # ...and at scale 0 the server answers as the base
    # Usage, logprobs and streaming come from the real server with the adapter applied.
    assert answer.usage.source == "reported" and answer.usage.output_tokens > 0
    assert answer.logprobs is not None and len(answer.logprobs) == answer.usage.output_tokens
    assert answer.confidence is not None and 0.0 < answer.confidence <= 1.0
    assert tuned["stream"] == answer.text


@pytest.mark.llamacpp
def test_llama_cpp_refuses_an_adapter_for_another_architecture(tmp_path: Path, smollm2: Path) -> None:
    from ragft.models.llamacpp import LlamaCppServer

    qwen_base = write_base_gguf(tmp_path / "qwen.gguf", arch="qwen2", **TINY)
    # Written by hand (the exporter refuses qwen2): llama.cpp itself must reject it cleanly.
    writer = gguf.GGUFWriter(str(tmp_path / "qwen-lora.gguf"), "qwen2")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 8.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 576), np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((576, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert qwen_base.exists()
    with pytest.raises(ModelUnavailableError, match="LoRA .*qwen-lora.gguf"):
        LlamaCppServer(smollm2, n_ctx=256, lora_adapters=[tmp_path / "qwen-lora.gguf"]).start()
    with pytest.raises(ModelUnavailableError, match="LoRA adapter not found"):
        LlamaCppServer(smollm2, n_ctx=256, lora_adapters=[tmp_path / "missing.gguf"]).start()


def naive_export(adapter: Path, out: Path) -> Path:
    """The export without the Q/K permutation: the control that shows why it is needed."""
    from safetensors.numpy import load_file

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(json.loads((adapter / "adapter_config.json").read_text())["lora_alpha"]))
    for key, value in load_file(str(adapter / "adapter_model.safetensors")).items():
        writer.add_tensor(gguf_tensor_name(key), value.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.mark.slow
@pytest.mark.llamacpp
def test_llama_cpp_with_the_adapter_matches_transformers_with_peft(tmp_path: Path, smollm2: Path) -> None:
    """Next-token log-probabilities at 14 positions of a fixed text, llama.cpp vs transformers:
    with the exported adapter they differ no more than the two engines differ on the base model
    (Q4_1 kernels vs de-quantized float32), while the same adapter without the Q/K permutation
    is far off."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    import httpx

    from ragft.models.llamacpp import LlamaCppServer

    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2.parent, gguf_file=smollm2.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(smollm2.parent, gguf_file=smollm2.name, dtype=torch.float32)
    tuned = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.1)
    tuned.save_pretrained(tmp_path / "peft")  # peft's own layout, read by the exporter
    tuned.eval()
    text = tokenizer.apply_chat_template(QUESTION[1:], add_generation_prompt=True, tokenize=False)
    text += "The capital of France is Paris, a large city on the river Seine."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    positions = range(len(ids) - 14, len(ids))
    with torch.no_grad():
        hf_tuned = torch.log_softmax(tuned(torch.tensor([ids])).logits[0].float(), -1)
        with tuned.disable_adapter():
            hf_base = torch.log_softmax(tuned(torch.tensor([ids])).logits[0].float(), -1)

    def llama_top(adapters: list[Path]) -> list[dict[int, float]]:
        tops = []
        with LlamaCppServer(smollm2, n_ctx=512, lora_adapters=adapters) as server:
            root = server.base_url.removesuffix("/v1")
            for p in positions:
                body = {"prompt": ids[:p], "n_predict": 1, "temperature": 0, "n_probs": 10, "cache_prompt": False}
                reply = httpx.post(root + "/completion", json=body, timeout=120).json()
                tops.append({t["id"]: t["logprob"] for t in reply["completion_probabilities"][0]["top_logprobs"]})
        return tops

    def gap(tops: list[dict[int, float]], reference: Any) -> float:
        return float(np.mean([abs(lp - float(reference[p - 1][t])) for p, top in zip(positions, tops) for t, lp in top.items()]))

    exported = export_lora_gguf(tmp_path / "peft", smollm2, tmp_path / "adapter.gguf").path
    unpermuted = naive_export(tmp_path / "peft", tmp_path / "naive.gguf")
    engines = gap(llama_top([]), hf_base)
    with_adapter = gap(llama_top([exported]), hf_tuned)
    without_permutation = gap(llama_top([unpermuted]), hf_tuned)
    adapter_effect = gap(llama_top([]), hf_tuned)
    assert with_adapter < 1.5 * engines + 0.05, (with_adapter, engines)
    assert without_permutation > 2 * with_adapter, (without_permutation, with_adapter)
    assert adapter_effect > 2 * with_adapter, (adapter_effect, with_adapter)
