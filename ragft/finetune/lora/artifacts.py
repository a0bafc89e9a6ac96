"""A trained LoRA as files: the peft adapter beside a ``lora.json`` manifest, never the base.

``<models>/lora/adapters/<job id>/`` holds ``adapter_config.json`` and
``adapter_model.safetensors`` (what peft, vLLM's ``--lora-modules`` and the GGUF exporter
read) and ``lora.json``: the model id, the base model by path and fingerprint, the training
data's SHA-256, the hyperparameters, the metrics and each file's SHA-256. The directory is
published in one rename, so it is either complete or absent.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragft.errors import FineTuneError
from ragft.finetune.lora.base_models import BaseModelRef
from ragft.finetune.lora.hyperparameters import LoraHyperparameters
from ragft.models.lora_layout import LORA_MANIFEST, LORA_PREFIX
from ragft.storage import atomic_write_json, file_sha256, publish_directory, read_json

__all__ = ["LORA_MANIFEST", "LORA_PREFIX", "LoraArtifact", "read_artifact", "write_artifact"]

ARTIFACT_FORMAT = "ragft-lora/1"


@dataclass(frozen=True, slots=True)
class LoraArtifact:
    """A published adapter directory and its manifest."""

    directory: Path
    model_id: str
    base: BaseModelRef
    manifest: Mapping[str, Any]

    @property
    def training_file_sha256(self) -> str | None:
        """SHA-256 of the training JSONL."""
        return self.manifest.get("training_file_sha256")

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters it was trained with."""
        return dict(self.manifest.get("hyperparameters", {}))


def write_artifact(directory: Path, *, model_id: str, job_id: str, adapter_dir: Path,
                   base: BaseModelRef, hyperparameters: LoraHyperparameters,
                   metrics: Mapping[str, float], files: Mapping[str, Any]) -> Path:
    """Publish ``adapter_dir``'s files with a manifest at ``directory`` (atomically)."""
    staging = directory.with_name(f".staging-{directory.name}")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(adapter_dir, staging)
    hashes = {p.name: file_sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
    atomic_write_json(staging / LORA_MANIFEST, {
        "format": ARTIFACT_FORMAT,
        "model_id": model_id,
        "job_id": job_id,
        "base_model": base.to_dict(),
        "training_file_sha256": files.get("training_sha256"),
        "validation_file_sha256": files.get("validation_sha256"),
        "hyperparameters": hyperparameters.to_dict(),
        "metrics": dict(metrics),
        "files": hashes,
        "created_at": time.time(),
    })
    publish_directory(staging, directory)
    return directory


def read_artifact(directory: str | Path) -> LoraArtifact:
    """Read an adapter directory's manifest, checking its files are there and unchanged."""
    path = Path(directory)
    manifest_path = path / LORA_MANIFEST
    if not manifest_path.is_file():
        raise FineTuneError(f"{path} is not a ragft LoRA adapter (no {LORA_MANIFEST})")
    manifest = read_json(manifest_path)
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file() or file_sha256(file) != digest:
            raise FineTuneError(f"LoRA adapter file {file} is missing or changed since training; "
                                "retrain or restore it")
    return LoraArtifact(path, str(manifest["model_id"]),
                        BaseModelRef.from_dict(manifest["base_model"]), manifest)
