"""On-disk cache for embedded datasets: built once, verified by checksum on every load.

The cache heals itself: an entry or checksum side file that is missing, unreadable, not a
regular file, junk, or that fails its checksum or cannot be decoded (truncated write,
manual edit, disk error) is rebuilt with one warning naming the file, never trusted.
Writes are atomic, so a crash mid-write leaves no half file behind. A cache location that
cannot be written is one line of :class:`~xbench.api.errors.UserError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from xbench.api.errors import UserError
from xbench.atomic import write_atomic
from xbench.taskkit.files import path_kind

log = logging.getLogger(__name__)
CACHE_ENV = "XBENCH_CACHE_DIR"
T = TypeVar("T")


def cache_root() -> Path:
    """``$XBENCH_CACHE_DIR`` or ``~/.cache/xbench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "xbench")


def key_of(params: Any) -> str:
    """A short stable hash of JSON-serialisable parameters."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(namespace: str, params: Any, suffix: str) -> Path:
    """Where :func:`cached_bytes` keeps the file for ``params`` (for tools that need a path)."""
    return cache_root() / namespace / f"{key_of(params)}{suffix}"


def cached_value(
    namespace: str,
    params: Any,
    suffix: str,
    build: Callable[[], bytes],
    decode: Callable[[bytes], T],
) -> tuple[T, str]:
    """``decode`` of the stored bytes for ``params`` and their sha256 checksum (the data
    revision stored in run records). The bytes are ``build()``-t and stored when missing,
    or when the stored ones fail their checksum or ``decode`` raises on them."""
    path = cache_path(namespace, params, suffix)
    _check_writable_location(path.parent)
    checksum_path = path.with_suffix(".sha256")
    stored = _verified(path, checksum_path)
    if stored is not None:
        try:
            return decode(stored[0]), stored[1]
        except Exception as error:  # whatever the stored bytes are, they are rebuilt
            log.warning("cache file %s cannot be decoded (%s); rebuilding it", path, error)
    payload = build()
    checksum = hashlib.sha256(payload).hexdigest()
    _store(path, payload)
    _store(checksum_path, checksum.encode())
    return decode(payload), checksum


def cached_bytes(
    namespace: str, params: Any, suffix: str, build: Callable[[], bytes]
) -> tuple[bytes, str]:
    """The stored bytes for ``params`` (``build()`` and stored when missing or corrupt)
    and their sha256 checksum (the data revision stored in run records)."""
    return cached_value(namespace, params, suffix, build, bytes)


def cached_json(namespace: str, params: Any, build: Callable[[], Any]) -> tuple[Any, str]:
    """Load ``build()``'s JSON result for ``params`` from the cache, building it if needed.

    Returns the data and its sha256 checksum (the data revision stored in run records).
    """

    def build_payload() -> bytes:
        return json.dumps({"params": params, "data": build()}, sort_keys=True).encode()

    def decode(payload: bytes) -> Any:
        return json.loads(payload)["data"]

    return cached_value(namespace, params, ".json", build_payload, decode)


def _verified(path: Path, checksum_path: Path) -> tuple[bytes, str] | None:
    """The stored bytes and checksum when both files are sound and agree; None (with a
    warning naming the faulty file, unless nothing is stored yet) otherwise."""
    kinds = path_kind(path), path_kind(checksum_path)
    if kinds == ("missing", "missing"):
        return None
    for file, kind in zip((path, checksum_path), kinds, strict=True):
        if kind != "file":
            shown = "is missing" if kind == "missing" else f"is {kind}, not a regular file"
            log.warning("cache file %s %s; rebuilding it", file, shown)
            return None
    try:
        payload, recorded = path.read_bytes(), checksum_path.read_bytes()
    except OSError as error:
        log.warning("cache file %s cannot be read (%s); rebuilding it", error.filename, error)
        return None
    checksum = hashlib.sha256(payload).hexdigest()
    if recorded.strip() != checksum.encode():
        log.warning(
            "cache file %s does not match its checksum file %s; rebuilding it", path, checksum_path
        )
        return None
    return payload, checksum


def _check_writable_location(folder: Path) -> None:
    """Refuse a cache folder that is, or lies under, something other than a folder
    (checked from the top down, so the message names the file in the way)."""
    for place in reversed((folder, *folder.parents)):
        kind = path_kind(place)
        if kind == "missing":
            return
        if kind != "folder":
            shown = {"file": "a file", "unreachable": "no access"}.get(kind, kind)
            raise _unwritable(place, f"it is {shown}" if kind != "unreachable" else shown)


def _store(path: Path, payload: bytes) -> None:
    """Write a cache file atomically, first clearing whatever is in its place."""
    kind = path_kind(path)
    try:
        if kind == "folder":
            shutil.rmtree(path)
        elif kind not in ("file", "missing"):
            path.unlink()
        write_atomic(path, payload)
    except OSError as error:
        raise _unwritable(path, error.strerror or str(error)) from None


def _unwritable(place: Path, reason: str) -> UserError:
    return UserError(
        f"cannot write the cache at {place} ({reason}); set {CACHE_ENV} to a writable folder"
    )
