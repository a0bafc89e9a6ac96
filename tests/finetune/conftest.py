"""Fixtures for the fine-tuning tests: real embedders, respx-routed SDK clients, small datasets."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import respx

from ragft.models.local import HashingEmbedder

API = "https://api.openai.com/v1"


def write_lines(path: Path, lines: Sequence[Any]) -> Path:
    """Write each item as one line: dicts/lists as JSON, strings verbatim."""
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def chat(user: str, assistant: str, system: str | None = "You are helpful.") -> dict[str, Any]:
    """One valid chat example."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


#: Labelled queries with disjoint vocabularies per label, so even the lexical
#: HashingEmbedder separates them.
ROUTES: list[tuple[str, str]] = [
    *[(f"write a poem about the {w}", "creative") for w in
      ("sea", "moon", "forest", "city", "rain", "winter", "river", "mountain", "garden", "sky")],
    *[(f"how do i reset my {w} password step by step", "procedural") for w in
      ("email", "laptop", "vpn", "okta", "slack", "wifi", "jira", "github", "zoom", "badge")],
    *[(f"what is the price limit for {w} expenses", "factual") for w in
      ("hotel", "meal", "taxi", "flight", "train", "parking", "mileage", "phone", "internet",
       "conference")],
]


@pytest.fixture(name="write_lines")
def write_lines_fixture():  # type: ignore[no-untyped-def]
    """:func:`write_lines` as a fixture (test modules do not import conftest)."""
    return write_lines


@pytest.fixture(name="chat")
def chat_fixture():  # type: ignore[no-untyped-def]
    """:func:`chat` as a fixture."""
    return chat


@pytest.fixture
def routes() -> list[tuple[str, str]]:
    """:data:`ROUTES`."""
    return list(ROUTES)


@pytest.fixture
def hashing() -> HashingEmbedder:
    """The instant lexical embedder."""
    return HashingEmbedder(256)


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    """The real MiniLM embedder (loaded once per session)."""
    from ragft.models.local import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """A respx router for api.openai.com; unrouted requests fail the test."""
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    """The real SDK client over ``httpx`` (so respx sees it), without retries."""
    with openai.OpenAI(api_key="sk-test", base_url=API, http_client=httpx.Client(),
                       max_retries=0) as c:
        yield c


def many_label_rows(n_labels: int = 150, per_label: int = 6, seed: int = 0) -> list[tuple[str, str]]:
    """``(utterance, intent)`` pairs over ``n_labels`` intents, an intent-150-like set: each
    intent has its own two content words, put into shared templates with shared filler, so
    the words every label uses carry no signal and the two own words do."""
    import random

    rng = random.Random(seed)
    templates = ["can you {a} my {b} please", "i want to {a} the {b}", "how do i {a} a {b}",
                 "{a} {b} for me", "what happens if i {a} my {b} today", "help me {a} this {b}"]
    filler = ["now", "quickly", "again", "tomorrow", "thanks", "asap", "", "", ""]
    rows = []
    for k in range(n_labels):
        a, b = f"verb{k}x", f"noun{k}y"
        for _ in range(per_label):
            text = f"{rng.choice(templates).format(a=a, b=b)} {rng.choice(filler)}".strip()
            rows.append((text, f"intent_{k}"))
    return rows


@pytest.fixture(name="many_label_rows")
def many_label_rows_fixture():  # type: ignore[no-untyped-def]
    """:func:`many_label_rows` as a fixture."""
    return many_label_rows
