"""Config -> wired objects: one small builder function per component.

Everything that turns a :class:`~ragft.config.RagftConfig` into live objects lives here, so the
CLI and the strategies never construct clients themselves. Models are built by the builders
registered in :mod:`ragft.models.registry` (by model-id prefix), from one
:class:`~ragft.models.registry.ModelEnvironment` per run; backends are imported lazily, so the
OpenAI SDK is only loaded when a config asks for an OpenAI model.

Sections: metering, the model environment, embeddings, the knowledge base, fine-tuning jobs,
and :class:`Components` (the parts strategies are built from).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ragft.config import LOCAL_CHAT, LOCAL_EMBEDDING, RagftConfig
from ragft.errors import AuthenticationError, ConfigError, IndexStoreError, ModelError, RegistryError
from ragft.metering.meter import Budget, Ledger, Meter
from ragft.metering.prices import PriceTable
from ragft.models.base import ChatModel, Embedder, SupportsClose, follows_prompts
from ragft.models.local_ft import LOCAL_FT_PREFIX, LocalGeneratorModel
from ragft.models.registry import (
    HASHING_PREFIX,
    ModelEnvironment,
    build_chat_model,
    build_embedding_model,
)
from ragft.rag.embedcache import CachedEmbedder, EmbeddingCache
from ragft.rag.index import VectorIndex
from ragft.rag.knowledge import CACHE_FILE, INDEX_DIR, KnowledgeBase
from ragft.rag.retriever import Retriever

if TYPE_CHECKING:
    import openai

    from ragft.finetune.backends import BackendContext
    from ragft.finetune.jobs import FineTuneBackend, JobEvent, JobManager
    from ragft.finetune.registry import CorpusIdentity, ModelRegistry

__all__ = [
    "HASHING_PREFIX",
    "JOBS_DIR",
    "LEDGER_FILE",
    "MODELS_DIR",
    "REGISTRY_FILE",
    "Components",
    "OpenAIClients",
    "backend_of_job",
    "bare_environment",
    "build_base_embedder",
    "build_embedder",
    "build_finetune_backend",
    "build_job_manager",
    "build_local_embedder",
    "build_meter",
    "build_retriever",
    "finetune_backend_context",
    "index_corpus_identity",
    "local_embedding_model",
    "open_knowledge_base",
]

#: File under the home directory where every metered call is appended.
LEDGER_FILE = "ledger.jsonl"
#: Under the home directory: the model registry, trained model artifacts, fine-tuning jobs.
REGISTRY_FILE = "registry.json"
MODELS_DIR = "models"
JOBS_DIR = "jobs"

_T = TypeVar("_T")

# --------------------------------------------------------------------------- metering


def build_meter(cfg: RagftConfig, *, ledger: bool = True, keep_records: bool = True) -> Meter:
    """A :class:`Meter` with the config's price overrides and budget, logging to
    ``<home>/ledger.jsonl`` unless ``ledger=False``; ``keep_records=False`` for a long-lived
    meter (a server) that must not hold every call in memory."""
    prices = PriceTable.load(cfg.path(cfg.prices.file) if cfg.prices.file else None)
    if (cfg.prices.models or cfg.prices.unpriced or cfg.prices.free_prefixes
            or cfg.prices.gpu_usd_per_hour is not None):
        prices = prices.with_overrides(
            cfg.prices.models,
            unpriced=cfg.prices.unpriced,
            free_prefixes=cfg.prices.free_prefixes,
            gpu_usd_per_hour=cfg.prices.gpu_usd_per_hour,
        )
    return Meter(
        prices,
        ledger=Ledger(cfg.home_path / LEDGER_FILE) if ledger else None,
        budget=Budget(total_usd=cfg.budget.total_usd, per_query_usd=cfg.budget.per_query_usd),
        keep_records=keep_records,
    )


# --------------------------------------------------------------------------- model environment


class OpenAIClients:
    """The environment's client factory: one OpenAI SDK client per base URL, made on first use,
    with the config's key, timeouts and retries (:class:`~ragft.models.registry.ClientFactory`)."""

    def __init__(self, cfg: RagftConfig):
        self._cfg = cfg
        self._clients: dict[str | None, openai.OpenAI] = {}

    def __call__(self, *, model: str, base_url: str | None = None) -> openai.OpenAI:
        """The client for ``model``: the configured backend, or the server at ``base_url``."""
        cfg = self._cfg
        if base_url is None and cfg.base_url is None and cfg.api_key is None:
            raise AuthenticationError(
                f"model {model!r} needs the OpenAI API: set {cfg.backend.api_key_env} "
                f"(or [backend] base_url for an OpenAI-compatible server), or use the offline "
                f"backend with [backend] provider = \"local\"",
                model=model,
            )
        if base_url not in self._clients:
            from ragft.models.openai import make_client

            self._clients[base_url] = make_client(
                # A server a builder started is not the configured backend: it gets no key.
                api_key=cfg.api_key if base_url is None else None,
                base_url=cfg.base_url if base_url is None else base_url,
                timeout=cfg.backend.timeout_s,
                max_retries=cfg.backend.max_retries,
            )
        return self._clients[base_url]

    def close(self) -> None:
        """Close every client made."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def local_embedding_model(cfg: RagftConfig) -> str:
    """The embedder local models train and run on: the configured one when it is local (MiniLM
    or hashing), else MiniLM — local training must not call a paid API unmetered."""
    return cfg.embedding_model if cfg.embedding_model.startswith("local/") else LOCAL_EMBEDDING


def bare_environment(cfg: RagftConfig) -> ModelEnvironment:
    """A model environment whose local embedders are neither metered nor cached (for local
    training and one-off builds); :class:`Components` builds the metered one of a run."""

    def local_embedder(name: str | None = None) -> Embedder:
        return build_embedding_model(name or local_embedding_model(cfg), env)

    env = ModelEnvironment(cfg.home_path / MODELS_DIR, OpenAIClients(cfg), local_embedder,
                           concurrency=cfg.backend.concurrency)
    return env


# --------------------------------------------------------------------------- embeddings


def build_base_embedder(cfg: RagftConfig, env: ModelEnvironment | None = None) -> Embedder:
    """The bare embedder named by ``cfg.embedding_model`` (not metered, not cached)."""
    return build_embedding_model(cfg.embedding_model, env or bare_environment(cfg))


def build_local_embedder(cfg: RagftConfig) -> Embedder:
    """The bare embedder local training uses (:func:`local_embedding_model`)."""
    return build_embedding_model(local_embedding_model(cfg), bare_environment(cfg))


def build_embedder(cfg: RagftConfig, meter: Meter, env: ModelEnvironment | None = None) -> CachedEmbedder:
    """The configured embedder, metered by ``meter`` and behind the on-disk embedding cache
    (``<index path>/embeddings.sqlite``), so only cache misses are called and billed."""
    metered = meter.embedder(build_base_embedder(cfg, env))
    return CachedEmbedder(metered, EmbeddingCache(cfg.index_path / CACHE_FILE))


# --------------------------------------------------------------------------- knowledge base


def open_knowledge_base(
    cfg: RagftConfig,
    meter: Meter,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    kind: str | None = None,
    create: bool = True,
) -> KnowledgeBase:
    """The knowledge base at ``cfg.index_path`` with the config's chunking, index kind and
    store backend (``[index] backend``).

    ``embedder`` defaults to :func:`build_embedder`; ``kind`` overrides ``[index] kind``.
    With ``create=False`` a missing index raises before any model is loaded.
    """
    store = None
    if cfg.index.backend == "pgvector":
        store = _pgvector_store(cfg, create=create, rebuild=rebuild)
    elif not create and not rebuild and not VectorIndex.exists(cfg.index_path / INDEX_DIR):
        raise IndexStoreError(f"no knowledge base at {cfg.index_path}; {cfg.index_hint()}")
    return KnowledgeBase.open(
        cfg.index_path,
        embedder if embedder is not None else build_embedder(cfg, meter),
        kind=(kind or cfg.index.kind),  # type: ignore[arg-type]
        chunk_tokens=cfg.index.chunk_tokens,
        chunk_overlap=cfg.index.chunk_overlap,
        create=create,
        rebuild=rebuild,
        store=store,
    )


def _pgvector_store(cfg: RagftConfig, *, create: bool, rebuild: bool) -> Any:
    """A factory opening the configured pgvector store for the knowledge base's embedder."""
    dsn = cfg.pg_dsn
    if not dsn:
        raise ConfigError(
            f'[index] backend = "pgvector" needs a PostgreSQL connection string: set the '
            f"{cfg.index.dsn_env} environment variable (or [index] dsn)"
        )
    from ragft.rag.stores.pgvector import PgVectorStore

    def open_store(embedder: Embedder) -> PgVectorStore:
        return PgVectorStore.open(
            dsn,
            embedder=embedder.name,
            dimension=embedder.dimension,
            create=create,
            rebuild=rebuild,
            table=cfg.index.table,
            hnsw_m=cfg.index.hnsw_m,
            hnsw_ef_construction=cfg.index.hnsw_ef_construction,
            ef_search=cfg.index.hnsw_ef_search,
        )

    return open_store


def build_retriever(cfg: RagftConfig, kb: KnowledgeBase, **overrides: Any) -> Retriever:
    """A retriever over ``kb`` with the ``[retrieval]`` settings (``overrides`` win).

    ``[retrieval] rerank = "embedding"`` adds an :class:`~ragft.rag.rerank.EmbeddingReranker`
    over the knowledge base's embedder; ``"llm"`` needs a chat model, so callers that have one
    pass ``reranker=LLMReranker(model)`` themselves.
    """
    r = cfg.retrieval
    settings: dict[str, Any] = {
        "mode": r.mode,
        "top_k": r.top_k,
        "candidates": r.candidates,
        "min_score": r.min_score,
        "dense_weight": r.dense_weight,
        "fusion": r.fusion,
    }
    if r.rerank == "embedding":
        from ragft.rag.rerank import EmbeddingReranker

        settings["reranker"] = EmbeddingReranker(kb.embedder)
    settings.update(overrides)
    return kb.retriever(**settings)


def index_corpus_identity(cfg: RagftConfig, kb: KnowledgeBase | None = None) -> CorpusIdentity | None:
    """The corpus identity (:class:`~ragft.finetune.registry.CorpusIdentity`) of the index at
    ``cfg.index_path`` — or of ``kb`` when it is already open; ``None`` without documents.

    Recorded with a model version at training time and compared when the model is resolved
    for a strategy (:meth:`Components.chat`).
    """
    from ragft.finetune.registry import CorpusIdentity

    if kb is not None:
        index = kb.index
    else:
        directory = cfg.index_path / INDEX_DIR
        if not VectorIndex.exists(directory):
            return None
        index = VectorIndex.load(directory)
    documents = {doc_id: index.document_hash(doc_id) or "" for doc_id in index.document_ids()}
    return CorpusIdentity.of(documents) if documents else None


# --------------------------------------------------------------------------- fine-tuning jobs


def finetune_backend_context(
    cfg: RagftConfig, *, on_event: Callable[[JobEvent], None] | None = None
) -> BackendContext:
    """What fine-tuning backends are built from, wired from the config (each part built only
    when a backend asks for it: the local backend needs no API key)."""
    from ragft.finetune.backends import BackendContext

    return BackendContext(
        models_dir=cfg.home_path / MODELS_DIR,
        embedder=lambda: build_local_embedder(cfg),
        openai_client=lambda: OpenAIClients(cfg)(model="OpenAI fine-tuning"),
        prices=lambda: build_meter(cfg, ledger=False).prices,
        on_event=on_event,
    )


def build_finetune_backend(
    cfg: RagftConfig, name: str, *, on_event: Callable[[JobEvent], None] | None = None
) -> FineTuneBackend:
    """The fine-tuning backend registered as ``name`` (:mod:`ragft.finetune.backends`)."""
    from ragft.finetune.backends import backend_spec

    return backend_spec(name).build(finetune_backend_context(cfg, on_event=on_event))


def build_job_manager(
    cfg: RagftConfig, backend_name: str, *, on_event: Callable[[JobEvent], None] | None = None
) -> JobManager:
    """A job manager over ``<home>/jobs/<backend>/`` metering to the home ledger."""
    from ragft.finetune.backends import backend_spec
    from ragft.finetune.jobs import JobManager

    spec = backend_spec(backend_name)
    backend = build_finetune_backend(cfg, backend_name, on_event=on_event)
    return JobManager(backend, cfg.home_path / JOBS_DIR / backend_name, meter=build_meter(cfg),
                      poll_interval=spec.poll_interval, max_poll_interval=spec.max_poll_interval)


def backend_of_job(job_id: str) -> str:
    """The name of the backend whose job ids ``job_id`` looks like; anything else is not a
    job id (said before asking any backend, or for an API key)."""
    from ragft.finetune.backends import backend_for_job

    return backend_for_job(job_id).name


# --------------------------------------------------------------------------- the parts of a run


class Components:
    """The parts strategies are built from, made on first use and shared.

    One instance per run: the evaluation harness builds every strategy from one
    ``Components`` so the index and the models load once. Models come from the builders of
    :mod:`ragft.models.registry`, all given :attr:`env` (built once here). Embedders it hands
    out are metered by ``meter``; chat models are metered by whoever calls them (strategies,
    with their purpose label). :meth:`close` (or ``with Components(...)``) releases what the
    built models hold, e.g. a local server a builder started.
    """

    def __init__(self, cfg: RagftConfig, meter: Meter):
        self.cfg = cfg
        self.meter = meter
        self._cache: dict[str, object] = {}
        self._clients = OpenAIClients(cfg)
        #: What every model builder of this run receives.
        self.env = ModelEnvironment(cfg.home_path / MODELS_DIR, self._clients, self.local_embedder,
                                    concurrency=cfg.backend.concurrency)

    def _once(self, key: str, make: Callable[[], _T]) -> _T:
        if key not in self._cache:
            self._cache[key] = make()
        return cast(_T, self._cache[key])

    def close(self) -> None:
        """Close every built model that holds a resource (newest first), then the SDK clients.
        The components are unusable afterwards."""
        for key, part in reversed(list(self._cache.items())):
            if key.startswith("chat:") and isinstance(part, SupportsClose):
                part.close()
        self._cache.clear()
        self._clients.close()

    def __enter__(self) -> Components:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- retrieval ----------------------------------------------------------------------------
    def embedder(self) -> CachedEmbedder:
        """The configured embedder (metered, cached on disk)."""
        return self._once("embedder", lambda: build_embedder(self.cfg, self.meter, self.env))

    def knowledge_base(self) -> KnowledgeBase:
        """The knowledge base at the configured index path (created empty if absent)."""
        return self._once("kb", lambda: open_knowledge_base(self.cfg, self.meter, embedder=self.embedder()))

    def retriever(self) -> Retriever:
        """A retriever over the knowledge base; refuses an empty index with what to run."""

        def make() -> Retriever:
            kb = self.knowledge_base()
            if len(kb) == 0:
                raise IndexStoreError(
                    f"the index at {self.cfg.index_path} is empty: {self.cfg.index_hint()} "
                    f"(or run `{self.cfg.command('quickstart')}`)"
                )
            overrides: dict[str, Any] = {}
            if self.cfg.retrieval.rerank == "llm":
                from ragft.rag.rerank import LLMReranker

                model = self.generative(self.cfg.models.reranker or self.cfg.chat_model,
                                        "[retrieval] rerank = \"llm\"")
                overrides["reranker"] = LLMReranker(self.meter.chat_model(model).with_purpose("rerank"))
            return build_retriever(self.cfg, kb, **overrides)

        return self._once("retriever", make)

    # -- models -------------------------------------------------------------------------------
    def local_embedder(self, name: str | None = None) -> Embedder:
        """The offline embedder local models use (MiniLM, or the configured local one), metered
        and behind the on-disk embedding cache: the extractive reader embeds the sentences of
        every passage it reads, and the same passages recur across queries and strategies.

        ``name`` asks for the local embedder a model was trained with, when it is another one
        (metered, not cached).
        """

        def make() -> Embedder:
            if self.cfg.embedding_model == local_embedding_model(self.cfg):
                return self.embedder()  # the same model: share its cache
            cache = EmbeddingCache(self.cfg.home_path / "local-embeddings.sqlite")
            return CachedEmbedder(self.meter.embedder(
                build_embedding_model(LOCAL_EMBEDDING, self.env)), cache)

        shared = self._once("local_embedder", make)
        if name is None or name == shared.name:
            return shared
        if not name.startswith("local/"):
            raise ModelError(f"the model was trained with embedder {name!r}, which ragft cannot "
                             "build here; set [models] embedding to it in the config")
        return self._once(f"local_embedder:{name}",
                          lambda: self.meter.embedder(build_embedding_model(name, self.env)))

    def registry(self) -> ModelRegistry:
        """The model registry at ``<home>/registry.json``."""
        from ragft.finetune.registry import ModelRegistry

        return self._once("registry", lambda: ModelRegistry(self.cfg.home_path / REGISTRY_FILE))

    def resolve(self, ref: str) -> str:
        """A model id for ``ref``: ``registry:NAME[@N]`` via the registry, anything else as is."""
        try:
            return str(self.registry().resolve(ref))
        except RegistryError as exc:
            raise RegistryError(
                f"{exc}. Train and promote one (offline: `python examples/finetune_local.py`; "
                f"or `ragft finetune start FILE --register ...` then `ragft models promote`), "
                f"or set [models] in the config to a model id"
            ) from None

    def corpus_identity(self) -> CorpusIdentity | None:
        """The identity of the configured index's corpus (the open knowledge base's, if any)."""
        kb = cast("KnowledgeBase | None", self._cache.get("kb"))
        return self._once("corpus_identity", lambda: index_corpus_identity(self.cfg, kb))

    def _check_corpus(self, ref: str) -> bool:
        from ragft.finetune.registry import check_corpus

        version = self.registry().version_for(ref)
        if version is None or version.corpus is None:
            return True  # nothing recorded: loading the index to compare would be wasted
        return check_corpus(version, self.corpus_identity(), stacklevel=4)

    def chat(self, ref: str) -> ChatModel:
        """The chat model ``ref`` names (a model id or ``registry:NAME``), built once by the
        builder registered for its prefix (not metered: callers meter it with their purpose).

        A registered version trained against another corpus than the configured index holds
        warns (:class:`~ragft.finetune.registry.CorpusMismatchWarning`), once per reference.
        """
        model_id = self.resolve(ref)
        self._once(f"corpus_check:{ref}", lambda: self._check_corpus(ref))
        return self._once(f"chat:{model_id}", lambda: build_chat_model(model_id, self.env))

    def generative(self, ref: str, feature: str) -> ChatModel:
        """The chat model ``ref`` names (as :meth:`chat`), checked to follow prompts: a
        :class:`ConfigError` naming ``feature`` for a model that answers one fixed way (the
        extractive reader, a local fine-tuned model — however ``ref`` names it, registry
        references included), which would fail every scoring or labelling call."""
        model = self.chat(ref)
        if not follows_prompts(model):
            raise ConfigError(
                f"{feature} needs a generative chat model, and {model.name} "
                f"({'the offline backend' if model.name == LOCAL_CHAT else 'a local fine-tuned model'})"
                f" answers one fixed way, whatever the prompt asks. Use the OpenAI backend, a "
                f"local server via [backend] base_url, or another option (rerank = \"embedding\", "
                f"classifier = \"trained\" or \"rules\")"
            )
        return model

    def base_chat(self) -> ChatModel:
        """The base chat model (``[models] chat`` or the backend default)."""
        return self.chat(self.cfg.chat_model)

    def finetuned_chat(self) -> ChatModel:
        """The fine-tuned generator (``[models] finetuned``)."""
        return self.chat(self.cfg.models.finetuned)

    def finetuned_generator_over_context(self) -> ChatModel:
        """The fine-tuned generator for pattern 1 (generator over retrieved context).

        API models read the context themselves. The local fine-tuned generator is a memory of
        trained answers, so it is paired with the extractive reader for what it does not know
        (see :class:`~ragft.models.grounded.GroundedGenerator`).
        """
        model = self.finetuned_chat()
        if not model.name.startswith(LOCAL_FT_PREFIX):
            return model
        from ragft.models.grounded import GroundedGenerator

        # The memory's own calibrated threshold decides when it knows the answer.
        threshold = model.threshold if isinstance(model, LocalGeneratorModel) else 0.5
        return self._once(
            f"grounded:{model.name}",
            lambda: GroundedGenerator(model, self.chat(LOCAL_CHAT), threshold=threshold),
        )

    def rewriter_chat(self) -> ChatModel:
        """The query rewriter (``[models] rewriter``)."""
        return self.chat(self.cfg.models.rewriter)

    def router_chat(self) -> ChatModel:
        """The trained router classifier (``[models] router``)."""
        return self.chat(self.cfg.models.router)
