"""Config loading: validation that fails loudly, backend resolution, path resolution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragft.config import LOCAL_CHAT, LOCAL_EMBEDDING, OPENAI_CHAT, load_config
from ragft.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ragft.toml"
    path.write_text(text)
    return path


def test_defaults_are_offline_without_a_key(tmp_path) -> None:
    cfg = load_config(env={})
    assert cfg.provider == "local"
    assert cfg.chat_model == LOCAL_CHAT and cfg.embedding_model == LOCAL_EMBEDDING


def test_api_key_or_base_url_selects_openai() -> None:
    assert load_config(env={"OPENAI_API_KEY": "sk-x"}).provider == "openai"
    cfg = load_config(env={"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"})
    assert cfg.provider == "openai" and cfg.chat_model == OPENAI_CHAT
    assert cfg.base_url == "http://127.0.0.1:8080/v1" and cfg.api_key is None


def test_forced_local_ignores_the_key() -> None:
    cfg = load_config(env={"OPENAI_API_KEY": "sk-x"}, overrides={"backend.provider": "local"})
    assert cfg.provider == "local"


def test_typo_fails_loudly_with_the_key_name(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"retrieval\.topk"):
        load_config(write(tmp_path, "[retrieval]\ntopk = 3\n"), env={})


@pytest.mark.parametrize(
    ("toml", "suggestion"),
    [
        ("[retrieval]\ntopk = 3\n", "did you mean 'top_k'?"),
        ("[strategy.cascade]\nthreshhold = 0.5\n", "did you mean 'threshold'?"),
        ("[retreival]\ntop_k = 3\n", "did you mean 'retrieval'?"),
        ("chome = 'x'\n", "did you mean 'home'?"),
    ],
)
def test_typo_suggests_the_nearest_valid_key(tmp_path, toml: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(suggestion)):
        load_config(write(tmp_path, toml), env={})


def test_unrelated_unknown_key_lists_the_valid_ones(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[retrieval]\nzzz = 1\n"), env={})
    assert "did you mean" not in str(info.value)
    assert "valid keys: candidates, context_tokens," in str(info.value)


def test_bounds_are_checked(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"strategy\.cascade\.threshold"):
        load_config(write(tmp_path, "[strategy.cascade]\nthreshold = 1.5\n"), env={})
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_config(write(tmp_path, "[index]\nchunk_tokens = 100\nchunk_overlap = 100\n"), env={})


def test_bad_toml_and_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[strategy\nname='rag'"), env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_paths_resolve_against_the_config_file(tmp_path) -> None:
    cfg = load_config(write(tmp_path, 'home = "state"\n[index]\ncorpus = "docs"\n'), env={})
    assert cfg.home_path == tmp_path / "state"
    assert cfg.index_path == tmp_path / "state" / "index"
    assert cfg.corpus_path == tmp_path / "docs"
    moved = load_config(write(tmp_path, 'home = "state"\n'), env={"RAGFT_HOME": "/tmp/elsewhere"})
    assert moved.home_path == Path("/tmp/elsewhere")


def test_overrides_are_validated() -> None:
    cfg = load_config(env={}, overrides={"strategy.name": "cascade", "retrieval.top_k": 3})
    assert cfg.strategy.name == "cascade" and cfg.retrieval.top_k == 3
    with pytest.raises(ConfigError, match="top_k"):
        load_config(env={}, overrides={"retrieval.top_k": 0})
