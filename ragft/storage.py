"""Durable file writes shared by every module that persists state (job state, registry, training
data, model artifacts, evaluation results, tiktoken cache files).

Every file ragft persists here is written aside and renamed into place: a reader, or a process
restarted after a crash, sees either the old complete file or the new complete file, never a
torn one. The data is fsynced before the rename and the directory after it, so the rename
survives a power cut too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ragft.redact import redact
from ragft.serialize import known_fields  # re-exported: its home was here

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_sha256",
    "known_fields",
    "fsync_dir",
    "locked",
    "publish_directory",
    "read_json",
]


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot be synced)."""
    # Makes the rename itself durable; not every filesystem supports it, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same dir, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`; secrets are masked (:mod:`ragft.redact`)."""
    atomic_write_bytes(path, redact(text).encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as pretty, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file (raises ``FileNotFoundError`` / ``json.JSONDecodeError``)."""
    return json.loads(Path(path).read_text("utf-8"))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: str | Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path + '.lock'`` for a read-modify-write.

    Readers of a single file do not need it (writes are atomic renames); writers take it so
    two processes updating the same JSON file do not lose each other's changes. ``shared``
    takes a shared lock instead, for readers of something replaced in more than one step
    (the index directory swap).
    """
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def publish_directory(staging: str | Path, final: str | Path) -> None:
    """Move a fully written ``staging`` directory to ``final`` in one rename.

    Every file inside is fsynced first. An existing ``final`` is replaced: it is renamed
    aside, the new directory renamed in, and only then the old one deleted, so ``final``
    never holds a mix of old and new files.
    """
    staging, final = Path(staging), Path(final)
    for file in staging.rglob("*"):
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    old: Path | None = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
