"""Strategies behind one interface, ``answer(query) -> Answer``, chosen by config.

>>> from ragft.strategies import from_config
>>> strategy = from_config("examples/configs/rag.toml")        # doctest: +SKIP
>>> answer = strategy.answer("What is the meal per diem?")     # doctest: +SKIP
>>> answer.text, answer.route, answer.cost_usd                 # doctest: +SKIP
>>> strategy.close()  # or: with from_config(...) as strategy:  # doctest: +SKIP

Built-in names: ``rag``, ``finetuned``, ``base``, ``ft_rag``, ``rewrite_rag``, ``router``,
``cascade``. Third-party strategies register the same way the built-ins do, with
:func:`register_strategy`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ragft.config import RagftConfig, load_config
from ragft.errors import ConfigError
from ragft.metering.meter import Meter
from ragft.strategies.base import REFUSAL_TEXT, AnswerStream, Draft, Strategy, is_abstention
from ragft.strategies.cascade import Cascade, ThresholdChoice, ThresholdPoint, calibrate_threshold
from ragft.strategies.finetuned import BaseChat, FineTuned
from ragft.strategies.rag import RAG, FineTunedGeneratorRAG
from ragft.strategies.rewrite import RewriteRAG
from ragft.strategies.router import (
    REFUSE,
    Classification,
    LazyTarget,
    LLMClassifier,
    QueryClassifier,
    Router,
    RulesClassifier,
    TrainedClassifier,
)

if TYPE_CHECKING:
    from ragft.components import Components

__all__ = [
    "RAG",
    "REFUSAL_TEXT",
    "AnswerStream",
    "BaseChat",
    "BuildContext",
    "Cascade",
    "Classification",
    "Draft",
    "FineTuned",
    "FineTunedGeneratorRAG",
    "LLMClassifier",
    "LazyTarget",
    "QueryClassifier",
    "RewriteRAG",
    "Router",
    "RulesClassifier",
    "Strategy",
    "ThresholdChoice",
    "ThresholdPoint",
    "TrainedClassifier",
    "available_strategies",
    "build_strategy",
    "calibrate_threshold",
    "from_config",
    "is_abstention",
    "register_strategy",
]


class BuildContext:
    """What a strategy builder receives: the config, the run's meter, the shared parts
    (retriever, models — built once, on first use) and :meth:`build` for composing others."""

    def __init__(self, cfg: RagftConfig, meter: Meter, parts: Components):
        self.cfg = cfg
        self.meter = meter
        self.parts = parts
        self._built: dict[str, Strategy] = {}

    def build(self, name: str) -> Strategy:
        """The strategy registered as ``name``, built once per context."""
        if name not in self._built:
            builder = _builders().get(name)
            if builder is None:
                raise ConfigError(
                    f"unknown strategy {name!r}; available: {', '.join(available_strategies())}"
                )
            self._built[name] = builder(self)
        return self._built[name]


StrategyBuilder = Callable[[BuildContext], Strategy]

_lock = threading.Lock()
_registry: dict[str, StrategyBuilder] = {}


def register_strategy(name: str, builder: StrategyBuilder, *, replace: bool = False) -> None:
    """Make ``name`` buildable from config. Duplicate names are refused unless ``replace``."""
    with _lock:
        if name in _registry and not replace:
            raise ValueError(f"strategy {name!r} is already registered")
        _registry[name] = builder


def _builders() -> dict[str, StrategyBuilder]:
    with _lock:
        return dict(_registry)


def available_strategies() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(_builders())


# -- built-in builders -------------------------------------------------------------------------
def _rag(ctx: BuildContext) -> RAG:
    s = ctx.cfg.strategy
    return RAG(
        ctx.parts.retriever(),
        ctx.parts.base_chat(),
        meter=ctx.meter,
        context_tokens=ctx.cfg.retrieval.context_tokens,
        max_tokens=s.max_tokens,
        min_confidence=s.min_confidence,
    )


def _ft_rag(ctx: BuildContext) -> FineTunedGeneratorRAG:
    s = ctx.cfg.strategy
    return FineTunedGeneratorRAG(
        ctx.parts.retriever(),
        ctx.parts.finetuned_generator_over_context(),
        meter=ctx.meter,
        context_tokens=ctx.cfg.retrieval.context_tokens,
        max_tokens=s.max_tokens,
        min_confidence=s.min_confidence,
    )


def _finetuned(ctx: BuildContext) -> FineTuned:
    return FineTuned(ctx.parts.finetuned_chat(), meter=ctx.meter, max_tokens=ctx.cfg.strategy.max_tokens)


def _base(ctx: BuildContext) -> BaseChat:
    return BaseChat(ctx.parts.base_chat(), meter=ctx.meter, max_tokens=ctx.cfg.strategy.max_tokens)


def _rewrite_rag(ctx: BuildContext) -> RewriteRAG:
    rag = ctx.build("rag")
    assert isinstance(rag, RAG)
    return RewriteRAG(ctx.parts.rewriter_chat(), rag, meter=ctx.meter)


def _router(ctx: BuildContext) -> Router:
    rc = ctx.cfg.strategy.router
    labels = tuple(rc.routes)
    classifier: QueryClassifier
    stored_min_score: float | None = None
    if rc.classifier == "rules":
        classifier = RulesClassifier()
    elif rc.classifier == "llm":
        model = ctx.parts.generative(ctx.cfg.chat_model, '[strategy.router] classifier = "llm"')
        classifier = LLMClassifier(model, meter=ctx.meter, labels=labels)
    else:
        trained = TrainedClassifier(ctx.parts.router_chat(), meter=ctx.meter, labels=labels)
        classifier, stored_min_score = trained, trained.stored_min_score
    known = set(available_strategies())
    routes: dict[str, Strategy | LazyTarget | str] = {}
    for label, target in rc.routes.items():
        if target == "router":
            raise ConfigError(f"router route {label!r} -> 'router' would route to itself; pick another strategy")
        if target != REFUSE and target not in known:
            raise ConfigError(f"router route {label!r} -> {target!r}: unknown strategy; available: "
                              f"{', '.join(sorted(known))} or {REFUSE!r}")
        # Built on first use: a route no query takes needs none of its models.
        routes[label] = REFUSE if target == REFUSE else LazyTarget(target, lambda t=target: ctx.build(t))
    return Router(
        classifier,
        routes,
        meter=ctx.meter,
        default_route=rc.default_route,
        # The config's number wins; else the threshold the trained router chose on validation.
        min_score=rc.min_score if rc.min_score is not None else (stored_min_score or 0.0),
    )


def _cascade(ctx: BuildContext) -> Cascade:
    return Cascade(
        ctx.build("finetuned"),
        ctx.build("rag"),
        meter=ctx.meter,
        threshold=ctx.cfg.strategy.cascade.threshold,
    )


for _name, _builder in {
    "rag": _rag,
    "ft_rag": _ft_rag,
    "finetuned": _finetuned,
    "base": _base,
    "rewrite_rag": _rewrite_rag,
    "router": _router,
    "cascade": _cascade,
}.items():
    register_strategy(_name, _builder)


def build_strategy(cfg: RagftConfig, *, strategy: str | None = None, meter: Meter | None = None,
                   parts: Components | None = None) -> Strategy:
    """Build the strategy ``strategy`` (default: the config's) from a loaded config.

    Without ``parts`` the strategy gets :class:`~ragft.components.Components` of its own and
    owns them: close the strategy (``strategy.close()`` or ``with build_strategy(...) as s``)
    to release what its models hold, e.g. a local model server. Given ``parts``, the caller
    closes them.
    """
    from ragft.components import Components, build_meter

    meter = meter or build_meter(cfg)
    if parts is not None:
        return BuildContext(cfg, meter, parts).build(strategy or cfg.strategy.name)
    own = Components(cfg, meter)
    try:
        built = BuildContext(cfg, meter, own).build(strategy or cfg.strategy.name)
    except BaseException:
        own.close()
        raise
    built.own(own)
    return built


def from_config(
    config: str | Path | RagftConfig | None = None,
    *,
    strategy: str | None = None,
    meter: Meter | None = None,
) -> Strategy:
    """Build a ready strategy from a TOML file (or a loaded config, or defaults).

    ``strategy`` overrides the config's ``[strategy] name``; ``meter`` lets several strategies
    share one meter (the evaluation harness does). The strategy owns the parts built for it:
    use it as a context manager (or call ``close()``) to release them.
    """
    cfg = config if isinstance(config, RagftConfig) else load_config(config)
    return build_strategy(cfg, strategy=strategy, meter=meter)
