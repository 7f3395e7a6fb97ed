"""Binary companion of :func:`xbench.cache.cached_json` for arrays (audio features).

Same contract: one file per parameter set, a sha256 checksum beside it, verified on every
load; a file that fails it is rebuilt, never trusted. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable

import numpy as np

from xbench.atomic import write_atomic
from xbench.cache import cache_root, key_of

log = logging.getLogger(__name__)


def cached_arrays(
    namespace: str, params: dict, build: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], str]:
    """``build()``'s arrays for ``params`` from the cache (built if needed), and the
    sha256 of the stored file (the data revision stored in run records)."""
    path = cache_root() / namespace / f"{key_of(params)}.npz"
    checksum_path = path.with_suffix(".sha256")
    if path.exists() and checksum_path.exists():
        payload = path.read_bytes()
        checksum = hashlib.sha256(payload).hexdigest()
        if checksum == checksum_path.read_text().strip():
            return _load(payload), checksum
        log.warning("cache file %s failed its checksum; rebuilding it", path)
    buffer = io.BytesIO()
    np.savez(buffer, **build())
    payload = buffer.getvalue()
    checksum = hashlib.sha256(payload).hexdigest()
    write_atomic(path, payload)
    write_atomic(checksum_path, checksum.encode())
    return _load(payload), checksum


def _load(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}
