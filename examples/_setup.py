"""Shared set-up for the example scripts: index the sample corpus and make sure the local
fine-tuned models exist (training them with finetune_local.py the first time, ~20 s).

Every example calls :func:`ready` first, so each one runs on its own from a fresh checkout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ragft.components import REGISTRY_FILE, Components, build_meter
from ragft.config import RagftConfig, load_config
from ragft.errors import RegistryError
from ragft.finetune.registry import ModelRegistry

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"


def ready(config: str, *, need_finetuned: bool = False) -> RagftConfig:
    """Load ``configs/<config>``, sync the index, and train the local models if needed."""
    cfg = load_config(CONFIGS / config)
    parts = Components(cfg, build_meter(cfg))
    report = parts.knowledge_base().sync(cfg.corpus_path, progress=True)
    if report.modified:
        print(f"[setup] index: {report.summary()}", file=sys.stderr)
    if need_finetuned and cfg.provider == "local":
        registry = ModelRegistry(cfg.home_path / REGISTRY_FILE)
        try:
            for name in ("generator", "rewriter", "router"):
                registry.resolve(f"registry:{name}")
        except RegistryError:
            print("[setup] training the local fine-tuned models (once)...", file=sys.stderr)
            subprocess.run(
                [sys.executable, str(HERE / "finetune_local.py"), "--home", str(cfg.home_path)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    return cfg
