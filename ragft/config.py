"""TOML configuration -> validated settings -> wired objects.

This is the only module that reads the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``RAGFT_HOME``, ``RAGFT_API_KEYS``). Everything below receives its parts explicitly.

A config file looks like ``examples/configs/rag.toml``; every table is optional and every key
is validated (``extra="forbid"``), so a typo fails with the key's name instead of being ignored.
"""

from __future__ import annotations

import difflib
import os
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragft import defaults
from ragft.errors import ConfigError
from ragft.redact import register_secret

__all__ = [
    "BackendConfig",
    "BudgetConfig",
    "CascadeConfig",
    "IndexConfig",
    "ModelsConfig",
    "PricesConfig",
    "RagftConfig",
    "RetrievalConfig",
    "RouterConfig",
    "ServeConfig",
    "StrategyConfig",
    "load_config",
]

LOCAL_CHAT = "local/extractive-reader"
LOCAL_EMBEDDING = "local/all-MiniLM-L6-v2-int8"
OPENAI_CHAT = "gpt-4.1-mini"
OPENAI_EMBEDDING = "text-embedding-3-small"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendConfig(_Strict):
    """Which backend serves models. ``auto``: OpenAI when an API key or base URL is
    configured, otherwise the offline local backend."""

    provider: Literal["auto", "local", "openai"] = "auto"
    api_key_env: str = "OPENAI_API_KEY"
    base_url: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    #: Requests one OpenAI embedding call sends at once (each batch retried on its own).
    concurrency: int = Field(4, ge=1, le=64)


class ModelsConfig(_Strict):
    """Model ids. Empty means the backend's default. ``registry:NAME`` resolves to the
    promoted version of NAME in the model registry."""

    chat: str = ""
    embedding: str = ""
    finetuned: str = "registry:generator"
    rewriter: str = "registry:rewriter"
    router: str = "registry:router"
    reranker: str = ""


class IndexConfig(_Strict):
    """Where the corpus is and how it is chunked and indexed."""

    corpus: str = "corpus/docs"
    path: str = "index"
    #: Why 200/40: see :data:`ragft.defaults.CHUNK_TOKENS`.
    chunk_tokens: int = Field(defaults.CHUNK_TOKENS, ge=32, le=8000)
    chunk_overlap: int = Field(defaults.CHUNK_OVERLAP, ge=0)
    kind: Literal["auto", "flat", "hnsw"] = "auto"
    #: Where vectors live: FAISS files under ``path`` (one machine), or PostgreSQL + pgvector
    #: shared by several processes and machines (see the README, "When you outgrow one machine").
    backend: Literal["faiss", "pgvector"] = "faiss"
    #: PostgreSQL connection string for ``backend = "pgvector"``. Prefer ``dsn_env``: a
    #: password in a config file ends up in version control. Never printed.
    dsn: str | None = Field(None, repr=False)
    #: Environment variable holding the connection string when ``dsn`` is not set.
    dsn_env: str = "RAGFT_PG_DSN"
    #: Prefix of the pgvector tables (``<table>_chunks`` ...): one knowledge base per prefix.
    table: str = Field("ragft", pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    #: pgvector HNSW build parameters (fixed when the tables are created) and query breadth.
    hnsw_m: int = Field(16, ge=2, le=100)
    hnsw_ef_construction: int = Field(64, ge=4, le=1000)
    hnsw_ef_search: int = Field(100, ge=1, le=1000)

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_smaller(cls, v: int, info: Any) -> int:
        size = info.data.get("chunk_tokens", defaults.CHUNK_TOKENS)
        if v >= size:
            raise ValueError(f"chunk_overlap ({v}) must be smaller than chunk_tokens ({size})")
        return v


class RetrievalConfig(_Strict):
    """How passages are found."""

    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    top_k: int = Field(defaults.TOP_K, ge=1, le=100)
    candidates: int = Field(defaults.CANDIDATES, ge=1, le=1000)
    min_score: float = Field(0.0, ge=0.0)
    rerank: Literal["none", "embedding", "llm"] = "none"
    dense_weight: float = Field(defaults.DENSE_WEIGHT, ge=0.0, le=1.0)
    #: How hybrid mode fuses dense and BM25 rankings (:data:`ragft.defaults.FUSION` says why
    #: ``weighted``); ``rrf`` is reciprocal-rank fusion, scale-free.
    fusion: Literal["weighted", "rrf"] = defaults.FUSION
    context_tokens: int = Field(defaults.CONTEXT_TOKENS, ge=100)


class CascadeConfig(_Strict):
    """Cascade thresholds."""

    threshold: float = Field(0.8, ge=0.0, le=1.0)


class RouterConfig(_Strict):
    """Router classifier and the strategy per class."""

    classifier: Literal["trained", "rules", "llm"] = "trained"
    default_route: str = "rag"
    #: ``None``: the trained router's own threshold, chosen on validation data when it was
    #: trained (0 for classifiers that have none); a number overrides it.
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    routes: dict[str, str] = Field(
        default_factory=lambda: {
            "factual": "rag",
            "procedural": "finetuned",
            "creative": "base",
            "out_of_scope": "refuse",
        }
    )


class StrategyConfig(_Strict):
    """Which strategy answers, plus per-strategy settings."""

    name: str = "rag"
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    max_tokens: int = Field(defaults.MAX_TOKENS, ge=1)
    cascade: CascadeConfig = CascadeConfig()
    router: RouterConfig = RouterConfig()


class BudgetConfig(_Strict):
    """Spending limits (USD); unset means unlimited."""

    total_usd: float | None = Field(None, ge=0)
    per_query_usd: float | None = Field(None, ge=0)


class ServeConfig(_Strict):
    """``ragft serve``: the OpenAI-compatible HTTP API.

    ``api_keys`` lists accepted keys, each either the key itself or ``"sha256:<hex digest>"``
    (so the file need not hold the secret); ``RAGFT_API_KEYS`` (comma-separated) adds more.
    With no key at all the API is open, which is only sensible on 127.0.0.1.
    """

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list, repr=False)
    #: Strategies served as models; empty means every registered strategy that builds.
    strategies: list[str] = Field(default_factory=list)
    #: Threads answering requests (strategies block; the event loop never runs them).
    workers: int = Field(4, ge=1, le=256)
    #: Wall-clock limit per request, queueing included; the client gets 504 after it.
    timeout_s: float = Field(60.0, gt=0)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_query_chars: int = Field(4000, ge=1)
    #: Spending limit per API key over the server's life (USD); unset means unlimited.
    key_budget_usd: float | None = Field(None, ge=0)
    #: How often the index directory is checked for a newer saved version (seconds; 0: never).
    reload_interval_s: float = Field(2.0, ge=0)


class PricesConfig(_Strict):
    """Price-table overrides: extra models, explicitly unpriced ids, free prefixes, and what
    an hour of self-hosted compute costs (``gpu_usd_per_hour``: billed for local LoRA
    training time; unset, local training is $0)."""

    file: str | None = None
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    unpriced: list[str] = Field(default_factory=list)
    free_prefixes: list[str] = Field(default_factory=list)
    gpu_usd_per_hour: float | None = Field(None, ge=0, le=10_000)


class RagftConfig(_Strict):
    """The whole configuration. ``home`` holds index, ledger, registry and caches."""

    home: str = ".ragft"
    backend: BackendConfig = BackendConfig()
    models: ModelsConfig = ModelsConfig()
    index: IndexConfig = IndexConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    strategy: StrategyConfig = StrategyConfig()
    budget: BudgetConfig = BudgetConfig()
    prices: PricesConfig = PricesConfig()
    serve: ServeConfig = ServeConfig()
    #: Directory relative paths are resolved against (the config file's folder, or cwd).
    base_dir: str = "."
    #: The config file this was loaded from (absolute), for hints that name it; None = defaults.
    config_file: str | None = None
    #: Environment snapshot taken at load time; tests pass their own.
    env: dict[str, str] = Field(default_factory=dict, repr=False)

    # -- resolved settings ------------------------------------------------------------------
    def path(self, value: str) -> Path:
        """``value`` resolved against :attr:`base_dir` (absolute paths stay as they are)."""
        p = Path(value).expanduser()
        # normpath folds "configs/../../x" so messages and outputs show the real location.
        return p if p.is_absolute() else Path(os.path.normpath(Path(self.base_dir) / p))

    def command(self, args: str) -> str:
        """``ragft ARGS`` as the user should type it to act on *this* configuration: with
        ``--config`` and the file's absolute path, so it works from any directory."""
        suffix = f" --config {shlex.quote(self.config_file)}" if self.config_file else ""
        return f"ragft {args}{suffix}"

    def index_hint(self) -> str:
        """What to run to build the index, naming only paths that exist (or saying which
        configured one does not, and where it is set)."""
        if self.corpus_path.is_dir():
            return f"run `{self.command('index')}`"
        where = f"[index] corpus in {self.config_file}" if self.config_file else "[index] corpus"
        return (
            f"the corpus directory {self.corpus_path} does not exist: create it, set {where}, "
            f"or pass a directory: `{self.command('index DIR')}`"
        )

    @property
    def home_path(self) -> Path:
        """The state directory (``RAGFT_HOME`` overrides ``home``)."""
        return self.path(self.env.get("RAGFT_HOME") or self.home)

    @property
    def index_path(self) -> Path:
        """Directory of the persisted index."""
        p = Path(self.index.path)
        return p if p.is_absolute() else self.home_path / p

    @property
    def corpus_path(self) -> Path:
        """Directory of documents to index."""
        return self.path(self.index.corpus)

    @property
    def pg_dsn(self) -> str | None:
        """The pgvector connection string: ``[index] dsn``, else the ``dsn_env`` variable."""
        return self.index.dsn or self.env.get(self.index.dsn_env) or None

    @property
    def api_key(self) -> str | None:
        """The OpenAI API key from the configured environment variable, if set.

        Registered with :func:`ragft.redact.register_secret` when read, so it is masked in every
        message and file ragft writes."""
        key = self.env.get(self.backend.api_key_env) or None
        register_secret(key)
        return key

    @property
    def base_url(self) -> str | None:
        """OpenAI-compatible base URL from the config or ``OPENAI_BASE_URL``."""
        return self.backend.base_url or self.env.get("OPENAI_BASE_URL") or None

    @property
    def serve_api_keys(self) -> tuple[str, ...]:
        """Keys ``ragft serve`` accepts: ``RAGFT_API_KEYS`` (comma-separated), then
        ``[serve] api_keys``; blanks dropped, order kept, duplicates once. Each is registered
        with :func:`ragft.redact.register_secret` when read, like :attr:`api_key`."""
        from_env = [k.strip() for k in self.env.get("RAGFT_API_KEYS", "").split(",")]
        keys = tuple(dict.fromkeys(k for k in (*from_env, *(k.strip() for k in self.serve.api_keys)) if k))
        for key in keys:
            register_secret(key)
        return keys

    @property
    def provider(self) -> Literal["local", "openai"]:
        """The backend in effect after resolving ``auto``."""
        if self.backend.provider == "auto":
            return "openai" if (self.api_key or self.base_url) else "local"
        return self.backend.provider

    @property
    def chat_model(self) -> str:
        """Base chat model id in effect."""
        return self.models.chat or (LOCAL_CHAT if self.provider == "local" else OPENAI_CHAT)

    @property
    def embedding_model(self) -> str:
        """Embedding model id in effect."""
        return self.models.embedding or (
            LOCAL_EMBEDDING if self.provider == "local" else OPENAI_EMBEDDING
        )

    def with_overrides(self, **changes: Any) -> RagftConfig:
        """A copy with top-level or dotted (``"strategy.name"``) fields replaced, validated."""
        data = self.model_dump()
        for dotted, value in changes.items():
            target = data
            keys = dotted.replace("__", ".").split(".")
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        return _validate(data, origin="overrides")


def _valid_keys(loc: Sequence[str | int]) -> list[str]:
    """The keys a table at ``loc`` accepts (``()`` is the top level); empty if not a table."""
    model: Any = RagftConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    # base_dir and env are filled in by load_config, not written in a file.
    return sorted(k for k in model.model_fields if k not in {"base_dir", "env"})


def _describe(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] != "extra_forbidden":
        return f"  {where}: {err['msg']}"
    valid = _valid_keys(err["loc"][:-1])
    close = difflib.get_close_matches(str(err["loc"][-1]), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(valid)
    return f"  {where}: unknown key; {hint}"


def _validate(data: Mapping[str, Any], origin: str) -> RagftConfig:
    try:
        return RagftConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise ConfigError(f"invalid config {origin}:\n" + "\n".join(lines)) from None


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RagftConfig:
    """Read and validate a TOML config (or defaults when ``path`` is None).

    ``env`` defaults to ``os.environ``; relative paths resolve against the config file's
    directory (cwd without a file). ``overrides`` are dotted keys, e.g.
    ``{"strategy.name": "cascade"}``.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    origin = "(defaults)"
    if path is not None:
        p = Path(path)
        origin = str(p)
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        base = p.resolve().parent
        data["config_file"] = str(p.resolve())
        if "base_dir" in data:
            base = (base / data.pop("base_dir")).resolve()
    data["base_dir"] = str(base)
    data["env"] = dict(os.environ if env is None else env)
    cfg = _validate(data, origin)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    # From here on the key is masked wherever it could surface (see ragft.redact).
    register_secret(cfg.api_key)
    return cfg
