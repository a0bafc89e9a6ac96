"""API keys: digests, labels, constant-time comparison of every key, and config validation."""

from __future__ import annotations

import hashlib

import pytest

from ragft.config import load_config
from ragft.errors import ConfigError
from ragft.serve.auth import ANONYMOUS, KeyRing


def test_keys_and_sha256_digests_identify_their_label() -> None:
    ring = KeyRing(["alpha", "sha256:" + hashlib.sha256(b"beta").hexdigest()])
    assert ring.enabled and ring.labels == ("key-1", "key-2")
    assert ring.identify("Bearer alpha") == "key-1"
    assert ring.identify("bearer beta") == "key-2"
    for header in (None, "", "Bearer", "Bearer ", "Bearer alph", "Bearer alphaa", "Basic alpha", "alpha"):
        assert ring.identify(header) is None
    # The digest itself is not a key.
    assert ring.identify("Bearer " + hashlib.sha256(b"beta").hexdigest()) is None
    assert "alpha" not in repr(ring) and hashlib.sha256(b"beta").hexdigest() not in repr(ring)


def test_without_keys_everyone_is_anonymous() -> None:
    ring = KeyRing([])
    assert not ring.enabled and ring.identify(None) == ANONYMOUS


def test_keys_with_spaces_are_refused() -> None:
    with pytest.raises(ConfigError, match="key 2"):
        KeyRing(["ok", " spaced "])


def test_keys_come_from_the_environment_then_the_config(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[serve]\napi_keys = ["from-file", "shared"]\n', "utf-8")
    cfg = load_config(path, env={"RAGFT_API_KEYS": " env-1, ,shared,env-2 "})
    assert cfg.serve_api_keys == ("env-1", "shared", "env-2", "from-file")
    assert "from-file" not in repr(cfg.serve)
    assert load_config(None, env={}).serve_api_keys == ()
