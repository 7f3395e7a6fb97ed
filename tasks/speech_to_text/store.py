"""Arrays (audio features) in xbench's checksummed cache, as one ``.npz`` per parameter set."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from xbench.taskkit.cache import cached_value


def cached_arrays(
    namespace: str, params: dict, build: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], str]:
    """``build()``'s arrays for ``params`` from the cache (built if needed), and the
    sha256 of the stored file (the data revision stored in run records). A stored file
    that is not a loadable ``.npz`` is rebuilt, like any damaged cache entry."""

    def build_payload() -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **build())
        return buffer.getvalue()

    return cached_value(namespace, params, ".npz", build_payload, _load)


def _load(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}
