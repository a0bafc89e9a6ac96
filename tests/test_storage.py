"""Durable writes: a file is either the old one or the new one, secrets never reach disk, and
writers holding the lock do not lose each other's updates."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from ragft.redact import register_secret
from ragft.storage import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    locked,
    publish_directory,
    read_json,
)


def test_json_round_trips_sorted_and_creates_missing_folders(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2], "ü": "ß"})
    assert read_json(path) == {"b": 1, "a": [1, 2], "ü": "ß"}
    text = path.read_text("utf-8")
    assert text.index('"a"') < text.index('"b"') and "ß" in text and text.endswith("\n")
    assert os.listdir(path.parent) == ["state.json"]  # no temp file left beside it


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path) -> None:
    path = tmp_path / "state.json"
    atomic_write_json(path, {"version": 1})

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]  # fails mid-write
    with pytest.raises(TypeError):
        atomic_write_json(path, {"version": object()})  # fails before anything is written
    assert read_json(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_text_writes_mask_registered_secrets(tmp_path) -> None:
    secret = "sk-test-" + "x" * 40
    register_secret(secret)
    path = tmp_path / "log.txt"
    atomic_write_text(path, f"error from server: key {secret} rejected")
    text = path.read_text("utf-8")
    assert secret not in text and "rejected" in text


def test_file_sha256_matches_hashlib_across_read_blocks(tmp_path) -> None:
    path = tmp_path / "blob.bin"
    data = os.urandom((1 << 20) + 123)  # more than one 1 MiB block
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_locked_writers_do_not_lose_updates(tmp_path) -> None:
    path = tmp_path / "counter.json"
    atomic_write_json(path, {"n": 0})

    def bump() -> None:
        for _ in range(20):
            with locked(path):
                n = read_json(path)["n"]
                atomic_write_json(path, {"n": n + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert read_json(path) == {"n": 80}


def test_publish_directory_replaces_the_whole_directory(tmp_path) -> None:
    final = tmp_path / "index"
    final.mkdir()
    (final / "old-only.txt").write_text("old")
    (final / "shared.txt").write_text("old")
    staging = tmp_path / ".index.staging"
    staging.mkdir()
    (staging / "shared.txt").write_text("new")
    (staging / "sub").mkdir()
    (staging / "sub" / "vectors.bin").write_bytes(b"\x00\x01")
    publish_directory(staging, final)
    assert sorted(p.relative_to(final).as_posix() for p in final.rglob("*")) == [
        "shared.txt", "sub", "sub/vectors.bin"]
    assert (final / "shared.txt").read_text() == "new"
    assert not staging.exists()
    assert sorted(os.listdir(tmp_path)) == ["index"]  # the old copy is gone too
