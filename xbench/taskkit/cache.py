"""On-disk cache for embedded datasets: built once, verified by checksum on every load.

A file whose checksum does not match (truncated write, manual edit, disk error) is rebuilt,
never trusted. Writes are atomic, so a crash mid-write leaves no half file behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xbench.atomic import write_atomic

log = logging.getLogger(__name__)
CACHE_ENV = "XBENCH_CACHE_DIR"


def cache_root() -> Path:
    """``$XBENCH_CACHE_DIR`` or ``~/.cache/xbench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "xbench")


def key_of(params: Any) -> str:
    """A short stable hash of JSON-serialisable parameters."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(namespace: str, params: Any, suffix: str) -> Path:
    """Where :func:`cached_bytes` keeps the file for ``params`` (for tools that need a path)."""
    return cache_root() / namespace / f"{key_of(params)}{suffix}"


def cached_bytes(
    namespace: str, params: Any, suffix: str, build: Callable[[], bytes]
) -> tuple[bytes, str]:
    """The stored bytes for ``params`` (``build()`` and stored when missing or corrupt)
    and their sha256 checksum (the data revision stored in run records)."""
    path = cache_path(namespace, params, suffix)
    checksum_path = path.with_suffix(".sha256")
    if path.exists() and checksum_path.exists():
        payload = path.read_bytes()
        checksum = hashlib.sha256(payload).hexdigest()
        if checksum == checksum_path.read_text().strip():
            return payload, checksum
        log.warning("cache file %s failed its checksum; rebuilding it", path)
    payload = build()
    checksum = hashlib.sha256(payload).hexdigest()
    write_atomic(path, payload)
    write_atomic(checksum_path, checksum.encode())
    return payload, checksum


def cached_json(namespace: str, params: Any, build: Callable[[], Any]) -> tuple[Any, str]:
    """Load ``build()``'s JSON result for ``params`` from the cache, building it if needed.

    Returns the data and its sha256 checksum (the data revision stored in run records).
    """

    def build_payload() -> bytes:
        return json.dumps({"params": params, "data": build()}, sort_keys=True).encode()

    payload, checksum = cached_bytes(namespace, params, ".json", build_payload)
    return json.loads(payload)["data"], checksum
