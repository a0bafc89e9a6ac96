"""Fixtures for the model backend tests: real OpenAI SDK clients whose HTTP goes to respx.

The SDK sends through ``httpx2`` unless given an ``httpx`` client, and respx only intercepts
``httpx``, so every client here is built with ``http_client=httpx.Client()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import httpx
import openai
import pytest
import respx

API = "https://api.openai.com/v1"


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """A respx router for api.openai.com; any request without a route fails the test."""
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    """The real SDK client, no retries (tests that want retries build their own)."""
    with openai.OpenAI(
        api_key="sk-test", base_url=API, http_client=httpx.Client(), max_retries=0  # type: ignore[arg-type]
    ) as c:
        yield c


@pytest.fixture
def tokens() -> ModuleType:
    """``ragft.tokens`` for tests that need tiktoken counts."""
    import ragft.tokens

    return ragft.tokens
