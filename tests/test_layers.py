"""Import direction (DESIGN.md): lower layers never import higher ones, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import ragft

ROOT = Path(ragft.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every ``ragft...`` module a file imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("ragft")}


def package_imports(package: str) -> dict[str, set[str]]:
    return {
        str(p.relative_to(ROOT)): imports_of(p) for p in (ROOT / package).rglob("*.py")
    }


def test_retriever_and_rerankers_do_not_import_each_other() -> None:
    assert "ragft.rag.rerank" not in imports_of(ROOT / "rag" / "retriever.py")
    assert "ragft.rag.retriever" not in imports_of(ROOT / "rag" / "rerank.py")


def test_token_counting_sits_below_models_metering_and_rag() -> None:
    for package in ("models", "rag"):
        for path, imported in package_imports(package).items():
            assert not any(m.startswith("ragft.metering.tokens") for m in imported), path
    assert not any(m.startswith(("ragft.metering", "ragft.models", "ragft.rag"))
                   for m in imports_of(ROOT / "tokens.py"))


def test_rag_knows_nothing_of_strategies_finetuning_or_eval() -> None:
    for path, imported in package_imports("rag").items():
        higher = {m for m in imported
                  if m.startswith(("ragft.strategies", "ragft.finetune", "ragft.eval", "ragft.cli"))}
        assert not higher, path
