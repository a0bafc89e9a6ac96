"""Strategies are swapped by config: every built-in builds from a TOML file and answers offline,
with fine-tuned parts resolved through the model registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragft.cli import main as cli
from ragft.components import MODELS_DIR, REGISTRY_FILE
from ragft.config import load_config
from ragft.errors import ConfigError, IndexStoreError, RegistryError
from ragft.finetune.data import generator_examples, rewriter_examples, router_examples, write_jsonl
from ragft.finetune.jobs import JobManager
from ragft.finetune.backends.local import LocalFineTuneBackend
from ragft.finetune.registry import ModelRegistry
from ragft.models.local import HashingEmbedder
from ragft.strategies import available_strategies, from_config, register_strategy

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "corpus" / "finetune"


def rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (DATA / name).read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with an index of the sample corpus and promoted local generator/rewriter/router,
    all on the hashing embedder (fast)."""
    home = tmp_path_factory.mktemp("home")
    config = home / "ragft.toml"
    config.write_text(
        f'home = "{home}"\n[models]\nembedding = "local/hashing-256"\n'
        f'[index]\ncorpus = "{ROOT / "corpus" / "docs"}"\n'
    )
    assert cli(["index", "--config", str(config), "--quiet"]) == 0
    backend = LocalFineTuneBackend(home / MODELS_DIR, HashingEmbedder(256))
    manager = JobManager(backend, home / "jobs" / "local")
    registry = ModelRegistry(home / REGISTRY_FILE)
    labels = ["factual", "procedural", "creative", "out_of_scope"]
    sets = {
        "generator": generator_examples(rows("qa_train.jsonl")),
        "rewriter": rewriter_examples(rows("rewrites.jsonl")),
        "router": router_examples(rows("routes.jsonl"), labels),
    }
    for name, examples in sets.items():
        path = home / f"{name}.jsonl"
        write_jsonl(examples, path)
        job = manager.start(path, model="local", suffix="t")
        status = manager.follow(job.job_id)
        v = registry.register(name, model_id=status.fine_tuned_model, base_model="local", purpose=name)
        registry.promote(name, v.version)
    return home


@pytest.mark.parametrize(
    ("strategy", "question", "route_start"),
    [
        ("rag", "What is the meal per diem?", "rag: "),
        ("finetuned", "How do I request a new laptop?", "finetuned: local-ft:generator:t:"),
        ("ft_rag", "What is the meal per diem?", "ft_rag: "),
        ("rewrite_rag", "cab money back?", "rewrite_rag: 'cab money back?' -> '"),
        ("router", "Write a haiku about Mondays", "router: "),
        ("cascade", "What is the meal per diem?", "cascade: finetuned "),
        ("base", "Write a haiku about Mondays", "base: local/extractive-reader"),
    ],
)
def test_every_builtin_strategy_answers_from_config(home, strategy, question, route_start) -> None:
    s = from_config(home / "ragft.toml", strategy=strategy)
    a = s.answer(question)
    assert a.strategy == strategy and str(a.route).startswith(route_start), str(a.route)
    assert a.text and a.calls and a.cost_usd == 0.0
    assert all(c.tags["strategy"] == strategy for c in a.calls)


def test_router_classes_come_from_the_trained_classifier(home) -> None:
    s = from_config(home / "ragft.toml", strategy="router")
    assert str(s.answer("Write a haiku about Mondays").route).startswith("router: creative (")
    assert str(s.answer("What is the capital of Peru?").route).startswith("router: out_of_scope (")


def test_cli_ask_prints_answer_sources_route_and_cost(home, capsys) -> None:
    assert cli(["ask", "What is the meal per diem?", "--config", str(home / "ragft.toml")]) == 0
    out = capsys.readouterr().out
    assert "$75" in out and "Sources:\n  [1] policies/travel_expenses.md" in out
    assert "Route: rag: " in out and "Usage: " in out and "$0.000000" in out
    assert cli(["ask", "What is the meal per diem?", "--config", str(home / "ragft.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["strategy"] == "rag" and data["calls"] and data["cost_usd"] == 0.0


def test_router_can_route_to_a_cascade_but_not_to_itself(home) -> None:
    cfg = load_config(home / "ragft.toml", overrides={"strategy.router.classifier": "rules", "strategy.router.routes": {
        "factual": "rag", "procedural": "cascade", "creative": "base", "out_of_scope": "refuse"}})
    a = from_config(cfg, strategy="router").answer("How do I request a new laptop?")
    assert str(a.route).startswith("router: procedural (1.00) -> cascade | cascade: finetuned"), str(a.route)
    loop = cfg.with_overrides(**{"strategy.router.routes": {"factual": "router"}, "strategy.router.default_route": "refuse"})
    with pytest.raises(ConfigError, match="route to itself"):
        from_config(loop, strategy="router")


@pytest.mark.parametrize("override", [{"strategy.router.classifier": "llm"}, {"retrieval.rerank": "llm"}])
def test_llm_only_options_are_refused_on_the_extractive_reader(home, override) -> None:
    cfg = load_config(home / "ragft.toml", overrides=override)
    with pytest.raises(ConfigError, match="needs a generative chat model"):
        from_config(cfg, strategy="router").answer("What is the meal per diem?")


def test_missing_registry_model_says_how_to_train(tmp_path) -> None:
    (tmp_path / "c.toml").write_text(f'home = "{tmp_path}"\n')
    with pytest.raises(RegistryError, match="finetune_local.py"):
        from_config(tmp_path / "c.toml", strategy="finetuned")


def test_empty_index_says_what_to_run(tmp_path) -> None:
    (tmp_path / "c.toml").write_text(f'home = "{tmp_path}"\n[models]\nembedding = "local/hashing-64"\n')
    with pytest.raises(IndexStoreError, match="ragft index"):
        from_config(tmp_path / "c.toml", strategy="rag")


def test_unknown_strategy_and_duplicate_registration() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'nope'; available: base, cascade"):
        from_config(load_config(env={}), strategy="nope")
    assert {"rag", "finetuned", "ft_rag", "rewrite_rag", "router", "cascade", "base"} <= set(available_strategies())
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("rag", lambda ctx: None)  # type: ignore[arg-type,return-value]


def test_openai_model_without_a_key_is_a_clear_error(home) -> None:
    cfg = load_config(home / "ragft.toml", env={}, overrides={"models.chat": "gpt-4.1-mini"})
    from ragft.errors import AuthenticationError

    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        from_config(cfg, strategy="rag")


def test_rules_router_needs_no_model_of_a_route_no_query_takes(home, tmp_path) -> None:
    # Same index, but a registry without any fine-tuned model.
    cfg = load_config(home / "ragft.toml", overrides={
        "strategy.router.classifier": "rules", "models.finetuned": "registry:nothing_here"})
    router = from_config(cfg, strategy="router")  # used to fail: no model 'nothing_here'
    a = router.answer("What is the meal per diem?")
    assert str(a.route).startswith("router: factual (1.00) -> rag | rag: "), str(a.route)
    with pytest.raises(RegistryError, match=r"router route 'procedural' -> 'finetuned': .*nothing_here"):
        router.answer("How do I request a new laptop?")
    typo = cfg.with_overrides(**{"strategy.router.routes": {"factual": "rga"}})
    with pytest.raises(ConfigError, match="router route 'factual' -> 'rga': unknown strategy"):
        from_config(typo, strategy="router")


def test_router_uses_the_threshold_stored_with_the_model_unless_configured(home) -> None:
    from ragft.components import Components, build_meter

    cfg = load_config(home / "ragft.toml")
    stored = Components(cfg, build_meter(cfg, ledger=False)).router_chat().min_score
    assert stored is not None and 0.0 <= stored < 1.0
    assert cfg.strategy.router.min_score is None
    assert from_config(cfg, strategy="router").min_score == stored  # type: ignore[attr-defined]
    fixed = cfg.with_overrides(**{"strategy.router.min_score": 0.4})
    assert from_config(fixed, strategy="router").min_score == 0.4  # type: ignore[attr-defined]
    rules = cfg.with_overrides(**{"strategy.router.classifier": "rules"})
    assert from_config(rules, strategy="router").min_score == 0.0  # type: ignore[attr-defined]


def test_a_model_trained_against_another_corpus_warns(home, capsys) -> None:
    from ragft.finetune.registry import CorpusIdentity, CorpusMismatchWarning

    config = str(home / "ragft.toml")
    path = home / "router-corpus.jsonl"
    write_jsonl(router_examples(rows("routes.jsonl"), ["factual", "procedural", "creative", "out_of_scope"]), path)
    assert cli(["finetune", "start", str(path), "--model", "local", "--suffix", "corpus",
                "--register", "corpus_router", "--config", config]) == 0
    registry = ModelRegistry(home / REGISTRY_FILE)
    trained = registry.get("corpus_router", 1)
    from ragft.components import index_corpus_identity

    assert trained.corpus is not None and trained.corpus.documents > 40  # recorded at training
    assert trained.corpus == index_corpus_identity(load_config(config))
    n_docs = trained.corpus.documents
    registry.promote("corpus_router", 1)
    cfg = load_config(home / "ragft.toml", overrides={"models.router": "registry:corpus_router"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same index: silent
        from_config(cfg, strategy="router")
    # A version trained against another corpus, used against this index: warned.
    v2 = registry.register("corpus_router", model_id=trained.model_id, base_model="local",
                           purpose="router", corpus=CorpusIdentity.of({"other/notes.md": "0" * 64}))
    registry.promote("corpus_router", v2.version)
    with pytest.warns(CorpusMismatchWarning, match=rf"corpus_router@2 .*1 document .*{n_docs} documents"):
        from_config(cfg, strategy="router")
    # On the command line: one line saying so, and the answer still comes.
    other = home / "corpus.toml"
    other.write_text((home / "ragft.toml").read_text().replace(
        "[models]\n", '[models]\nrouter = "registry:corpus_router"\n'))
    capsys.readouterr()
    assert cli(["ask", "Write a haiku about Mondays", "--config", str(other), "--strategy", "router"]) == 0
    err = capsys.readouterr().err
    assert f"ragft: warning: model corpus_router@2 ({trained.model_id}) was trained against a corpus of 1 document" in err
    assert "CorpusMismatchWarning" not in err
