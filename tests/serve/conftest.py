"""Fixtures for the server tests: a small real corpus indexed with the hashing embedder, configs
written as TOML files, a real uvicorn on 127.0.0.1 (``BackgroundServer``) and the real
``openai`` SDK as the client. ``gated`` is a test strategy that waits until the test releases
it, to hold a request in flight without timing anything. Test modules get the helpers through
fixtures (``keys``, ``gate``, ``questions``, ``make_config``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import openai
import pytest

from ragft.components import Components, build_meter
from ragft.config import RagftConfig, load_config
from ragft.route import Route
from ragft.serve import BackgroundServer
from ragft.strategies import BuildContext, Draft, Strategy, register_strategy

KEYS = ("sk-test-alpha-7f3c", "sk-test-beta-91d2")

DOCS: dict[str, str] = {
    "policies/travel.md": "# Travel\n\nThe meal per diem is $75 per day for full travel days.\n\n"
    "Hotel rooms are capped at $220 per night in large cities.\n",
    "policies/leave.md": "# Leave\n\nEmployees receive 25 days of paid vacation each year.\n\n"
    "New parents get 20 weeks of paid parental leave.\n",
    "product/webhooks.md": "# Webhooks\n\nFailed webhook deliveries are retried with exponential "
    "backoff for up to 24 hours.\n",
    "org/security.md": "# Security\n\nPasswords must be rotated every 90 days and be at least 14 "
    "characters long.\n",
}

#: Questions with the fact each answer must contain (for mix-up checks).
QUESTIONS: dict[str, str] = {
    "What is the meal per diem?": "$75",
    "How many days of paid vacation do employees receive?": "25 days",
    "How long are failed webhook deliveries retried?": "24 hours",
    "How often must passwords be rotated?": "90 days",
}


class Gate:
    """Lets a test hold ``gated`` requests in flight and release them."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def reset(self) -> None:
        self.entered.clear()
        self.release.clear()


GATE = Gate()


class Gated(Strategy):
    """Answers ``released: <query>`` once the test sets ``GATE.release``."""

    kind = "gated"

    def _draft(self, query: str) -> Draft:
        GATE.entered.set()
        if not GATE.release.wait(60):
            raise TimeoutError("the test never released the gate")
        return Draft(text=f"released: {query}", route=Route("gated", detail="released by the test"))


def _gated(ctx: BuildContext) -> Strategy:
    return Gated(meter=ctx.meter)


register_strategy("gated", _gated, replace=True)


def write_corpus(root: Path, docs: Mapping[str, str] = DOCS) -> Path:
    for name, text in docs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return root


def _toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of them are valid TOML too


def write_config(path: Path, home: Path, corpus: Path, serve: Mapping[str, Any] = (), extra: str = "") -> Path:
    """A TOML config: offline backend with the instant hashing embedder."""
    lines = [
        f"home = {_toml_value(str(home))}",
        "[index]",
        f"corpus = {_toml_value(str(corpus))}",
        "[models]",
        'embedding = "local/hashing-256"',
        "[serve]",
        *(f"{k} = {_toml_value(v)}" for k, v in dict(serve).items()),
        extra,
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def index(cfg: RagftConfig) -> None:
    Components(cfg, build_meter(cfg, ledger=False)).knowledge_base().sync(cfg.corpus_path, progress=False)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """A home with the corpus indexed once for the session (tests that change it make their own)."""
    root = tmp_path_factory.mktemp("home")
    cfg = load_config(write_config(root / "index.toml", root, corpus), env={})
    index(cfg)
    return root


def config(tmp: Path, home: Path, corpus: Path, *, keys: tuple[str, ...] = KEYS, **serve: Any) -> RagftConfig:
    serve.setdefault("reload_interval_s", 0)
    extra = serve.pop("_extra", "")
    path = write_config(tmp / "serve.toml", home, corpus, serve, extra=extra)
    return load_config(path, env={"RAGFT_API_KEYS": ",".join(keys)} if keys else {})


@pytest.fixture(scope="session")
def keys() -> tuple[str, ...]:
    return KEYS


@pytest.fixture(scope="session")
def questions() -> dict[str, str]:
    return QUESTIONS


@pytest.fixture
def gate() -> Iterator[Gate]:
    GATE.reset()
    yield GATE
    GATE.release.set()  # never leave a request waiting


@pytest.fixture
def make_config(tmp_path: Path, home: Path, corpus: Path):  # type: ignore[no-untyped-def]
    """``make_config(keys=..., home=..., corpus=..., **serve)`` -> a loaded config."""

    def make(*, keys: tuple[str, ...] = KEYS, home: Path = home, corpus: Path = corpus, **serve: Any) -> RagftConfig:
        return config(tmp_path, home, corpus, keys=keys, **serve)

    return make


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, home: Path, corpus: Path) -> Iterator[BackgroundServer]:
    """One server for the module: two keys, small limits, every strategy that builds."""
    tmp = tmp_path_factory.mktemp("server")
    cfg = config(tmp, home, corpus, max_body_bytes=8192, max_query_chars=500)
    with BackgroundServer(cfg) as running:
        yield running


@pytest.fixture
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEYS[0], max_retries=0)
