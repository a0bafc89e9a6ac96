"""Write a peft LoRA adapter as a GGUF LoRA adapter that llama.cpp loads beside its base GGUF.

A peft adapter directory holds ``adapter_config.json`` (rank ``r``, ``lora_alpha``, target
modules) and ``adapter_model.safetensors`` with one ``lora_A`` (rank × in) and one ``lora_B``
(out × rank) matrix per adapted linear layer, named after the Hugging Face module
(``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight``). llama.cpp wants:

* metadata ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha`` and
  the base model's ``general.architecture`` (it refuses an adapter for another architecture);
* tensors named after the base GGUF's own tensors plus ``.lora_a`` / ``.lora_b``
  (``blk.3.attn_q.weight.lora_a``), with numpy shapes (rank, in) and (out, rank), so that
  GGML's reversed dimensions line up with the base weight's;
* scale ``alpha / rank`` applied at run time, as peft does (rsLoRA's ``alpha / sqrt(rank)`` is
  written as an equivalent alpha).

**Llama's permuted Q/K.** llama.cpp's Llama GGUFs store ``attn_q`` / ``attn_k`` with the rows of
every head reordered (rotary pairs interleaved instead of in two halves); ``transformers``
undoes that when it loads a GGUF, so an adapter trained on those weights has its ``lora_B``
rows in Hugging Face order. The same row permutation is applied to ``lora_B`` here (``lora_A``
acts on the input side and is unchanged): without it the adapter would perturb the wrong
rotary dimensions. ``tests/models/test_gguf_adapter.py`` checks llama.cpp's output with the
adapter against transformers + peft with the same adapter.

Only the base GGUF's metadata and tensor shapes are read (not its weights): every LoRA pair is
checked against the base tensor it adapts, so a mismatched base is an error here rather than a
failure inside the server.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragft.errors import AdapterExportError
from ragft.storage import atomic_write_bytes

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "GGUFAdapter",
    "export_lora_gguf",
    "gguf_tensor_name",
    "read_gguf_adapter",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

#: Hugging Face module (inside a decoder layer) -> llama.cpp tensor (inside ``blk.N``).
_LAYER_MODULES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
#: Architectures whose tensor naming and Q/K layout this module knows (and tests).
_SUPPORTED_ARCHITECTURES = ("llama",)
_PEFT_KEY = re.compile(
    r"^(?:base_model\.model\.)?model\.layers\.(?P<layer>\d+)\.(?P<module>[a-z_]+\.[a-z_]+)"
    r"\.lora_(?P<side>[AB])\.weight$"
)


@dataclass(frozen=True, slots=True)
class GGUFAdapter:
    """What was written (or read back): the file, its architecture, rank, alpha and tensors."""

    path: Path
    architecture: str
    rank: int
    alpha: float
    tensors: int
    modules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for registry records and reports)."""
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "rank": self.rank,
            "alpha": self.alpha,
            "tensors": self.tensors,
            "modules": list(self.modules),
        }


def gguf_tensor_name(peft_key: str) -> str:
    """The llama.cpp tensor a peft LoRA tensor adapts, plus ``.lora_a`` / ``.lora_b``.

    ``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`` ->
    ``blk.3.attn_q.weight.lora_a``. Raises :class:`AdapterExportError` for modules llama.cpp's
    Llama graph has no LoRA slot for here (embeddings, ``lm_head``, norms).
    """
    m = _PEFT_KEY.match(peft_key)
    if m is None or m["module"] not in _LAYER_MODULES:
        raise AdapterExportError(
            f"cannot export adapter tensor {peft_key!r}: only the attention and MLP projections "
            f"({', '.join(k.split('.')[1] for k in _LAYER_MODULES)}) can be exported to GGUF; "
            "train with target_modules limited to those"
        )
    return f"blk.{m['layer']}.{_LAYER_MODULES[m['module']]}.weight.lora_{m['side'].lower()}"


def _permute_rows(matrix: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a Q/K output projection from Hugging Face's rotary layout (each
    head's dimensions in two halves) to llama.cpp's (interleaved pairs), as its converter does
    to the base weights."""
    rows = matrix.shape[0]
    if rows % (2 * n_head):
        raise AdapterExportError(f"{rows} rows cannot be split into {n_head} rotary heads")
    return (
        matrix.reshape(n_head, 2, rows // n_head // 2, *matrix.shape[1:])
        .swapaxes(1, 2)
        .reshape(matrix.shape)
    )


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _read_base(base_gguf: Path) -> tuple[str, int, int, dict[str, tuple[int, ...]]]:
    """Architecture, head counts and tensor shapes (numpy order: out, in) of the base GGUF."""
    import gguf

    if not base_gguf.is_file():
        raise AdapterExportError(f"base GGUF not found: {base_gguf}")
    try:
        reader = gguf.GGUFReader(str(base_gguf))
    except (ValueError, OSError) as exc:
        raise AdapterExportError(f"{base_gguf} is not a readable GGUF file: {exc}") from exc
    arch = str(_field(reader, "general.architecture") or "")
    if arch not in _SUPPORTED_ARCHITECTURES:
        raise AdapterExportError(
            f"GGUF export supports Llama-architecture bases ({', '.join(_SUPPORTED_ARCHITECTURES)}); "
            f"{base_gguf.name} is {arch or 'of unknown architecture'!r}. Serve the adapter in-process "
            "with transformers + peft, or behind vLLM (--enable-lora), instead"
        )
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    n_head_kv = int(_field(reader, f"{arch}.attention.head_count_kv") or n_head)
    # GGUFReader reports GGML order (in, out); reverse to numpy/torch order (out, in).
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    return arch, n_head, n_head_kv, shapes


def _read_adapter(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    config_path = adapter_dir / ADAPTER_CONFIG
    weights_path = adapter_dir / ADAPTER_WEIGHTS
    for required in (config_path, weights_path):
        if not required.is_file():
            raise AdapterExportError(
                f"{required} not found: expected a peft adapter directory "
                f"({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS}, as written by save_pretrained)"
            )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterExportError(f"{config_path} is not valid JSON: {exc}") from exc
    from safetensors.numpy import load_file

    try:
        weights = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise AdapterExportError(f"{weights_path} is not a readable safetensors file: {exc}") from exc
    return config, weights


def _alpha(config: Mapping[str, Any]) -> tuple[int, float]:
    """Rank and the alpha to write so that llama.cpp's ``alpha / rank`` equals peft's scale."""
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterExportError(f"only LoRA adapters can be exported, not {config.get('peft_type')!r}")
    if config.get("use_dora"):
        raise AdapterExportError("DoRA adapters cannot be served by llama.cpp; train without use_dora")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterExportError(
            "adapters with rank_pattern/alpha_pattern (a rank or alpha per module) cannot be "
            "exported: llama.cpp applies one alpha to every tensor; train with a single r and lora_alpha"
        )
    if config.get("modules_to_save"):
        raise AdapterExportError(
            f"modules_to_save={config['modules_to_save']!r} holds fully trained layers, which a GGUF "
            "LoRA adapter cannot carry; train without modules_to_save"
        )
    try:
        rank = int(config["r"])
        alpha = float(config["lora_alpha"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterExportError(f"{ADAPTER_CONFIG} lacks a valid r / lora_alpha: {exc}") from exc
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # peft scales by alpha/sqrt(r); llama.cpp by alpha/r
    return rank, alpha


def export_lora_gguf(
    adapter_dir: str | os.PathLike[str],
    base_gguf: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    dtype: str = "f32",
    name: str | None = None,
) -> GGUFAdapter:
    """Convert the peft adapter in ``adapter_dir`` to a llama.cpp LoRA adapter at ``out_path``.

    ``base_gguf`` is the GGUF the adapter was trained against (loaded into transformers with
    ``gguf_file=``); its architecture, head counts and tensor shapes decide the naming, the
    Q/K permutation and the shape checks. ``dtype`` is ``"f32"`` (exact) or ``"f16"`` (half the
    size). The file is written aside and renamed, so a crash never leaves a truncated adapter.
    Raises :class:`~ragft.errors.AdapterExportError` saying what to change.
    """
    import gguf

    if dtype not in ("f32", "f16"):
        raise AdapterExportError(f"dtype must be 'f32' or 'f16', not {dtype!r}")
    adapter_dir, base_gguf, out_path = Path(adapter_dir), Path(base_gguf), Path(out_path)
    config, weights = _read_adapter(adapter_dir)
    rank, alpha = _alpha(config)
    arch, n_head, n_head_kv, base_shapes = _read_base(base_gguf)

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        target = gguf_tensor_name(key)
        base, side = target.rsplit(".", 1)
        pairs.setdefault(base, {})[side] = value.astype(np.float32)
    if not pairs:
        raise AdapterExportError(f"{adapter_dir / ADAPTER_WEIGHTS} holds no LoRA tensors")

    out_dtype = np.float32 if dtype == "f32" else np.float16
    tensors: list[tuple[str, np.ndarray]] = []
    for base in sorted(pairs, key=_natural):
        pair = pairs[base]
        if set(pair) != {"lora_a", "lora_b"}:
            raise AdapterExportError(f"{base}: lora_A and lora_B must both be present, found {sorted(pair)}")
        a, b = pair["lora_a"], pair["lora_b"]
        if base not in base_shapes:
            raise AdapterExportError(f"{base_gguf.name} has no tensor {base}: was the adapter trained on this base?")
        out_dim, in_dim = base_shapes[base]
        if a.shape != (rank, in_dim) or b.shape != (out_dim, rank):
            raise AdapterExportError(
                f"{base}: lora_A {a.shape} / lora_B {b.shape} do not fit the base weight "
                f"({out_dim} x {in_dim}) at rank {rank}: the adapter was trained on another base model"
            )
        if base.endswith(".attn_q.weight"):
            b = _permute_rows(b, n_head)
        elif base.endswith(".attn_k.weight"):
            b = _permute_rows(b, n_head_kv)
        tensors.append((f"{base}.lora_a", np.ascontiguousarray(a, dtype=out_dtype)))
        tensors.append((f"{base}.lora_b", np.ascontiguousarray(b, dtype=out_dtype)))

    # GGUFWriter writes to a path; the file (a few MB) is then published atomically, so a crash
    # never leaves a truncated adapter where a server would load it.
    with tempfile.TemporaryDirectory(prefix="ragft-gguf-") as scratch:
        staged = Path(scratch) / "adapter.gguf"
        writer = gguf.GGUFWriter(str(staged), arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(name or adapter_dir.name)
        for tensor_name, data in tensors:
            writer.add_tensor(tensor_name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        atomic_write_bytes(out_path, staged.read_bytes())
    modules = tuple(sorted({t.split(".")[2] for t, _ in tensors}))
    return GGUFAdapter(out_path, arch, rank, alpha, len(tensors), modules)


def read_gguf_adapter(path: str | os.PathLike[str]) -> GGUFAdapter:
    """Read back the metadata of a GGUF LoRA adapter (checks that it is one)."""
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise AdapterExportError(f"{path} is not a readable GGUF file: {exc}") from exc
    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise AdapterExportError(f"{path} is a GGUF file but not a LoRA adapter")
    names = [t.name for t in reader.tensors]
    ranks = {int(t.shape.tolist()[1]) for t in reader.tensors if t.name.endswith(".lora_a")}
    return GGUFAdapter(
        path=path,
        architecture=str(_field(reader, "general.architecture")),
        rank=ranks.pop() if len(ranks) == 1 else 0,
        alpha=float(_field(reader, "adapter.lora.alpha")),
        tensors=len(names),
        modules=tuple(sorted({n.split(".")[2] for n in names})),
    )


def _natural(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1, name)
