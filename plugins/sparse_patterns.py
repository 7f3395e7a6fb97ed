"""Block layouts of the ``sparse`` backend: which key blocks each query block reads.

Queries and keys are cut into blocks of ``block_size``; a layout is a bool
``(n_query_blocks, n_key_blocks)`` table, True where the pair is computed. Cross-attention
has no diagonal (a decoder of Nq tokens reads an encoder of Nk ≠ Nq tokens), so query
block ``i`` is aligned to the key block at the same *relative* position,
``c(i) = floor((i + 0.5) · nKb / nQb)``, and every pattern keeps a window of blocks around
it. The layout depends only on the padded lengths, never on which keys are real: padding is
applied on top, key by key.

The query side of a layout is the decoder's sequence of ``total`` columns
(:class:`xbench.api.backend.QueryPositions`), not the rows of one call: a call whose queries
are the columns ``start … start + Nq − 1`` reads the layout rows of those columns (column
``c`` is in query block ``c // block_size``). A token therefore sees the same keys whether
it arrives with the whole target (teacher forcing) or alone (a decode step); ``forward`` is
the case ``start = 0, total = Nq``.
"""

from __future__ import annotations

import torch
from torch import Tensor

PATTERNS = ("local", "strided", "bigbird")


def block_count(length: int, block_size: int) -> int:
    """Blocks needed to cover ``length`` positions (the last one may be partial)."""
    return -(-length // block_size)


def aligned_key_blocks(n_query_blocks: int, n_key_blocks: int) -> Tensor:
    """(nQb,) key block at the same relative position as each query block's centre."""
    i = torch.arange(n_query_blocks)
    # floor((i + 0.5) * nKb / nQb) in exact integer arithmetic; always < nKb.
    return ((2 * i + 1) * n_key_blocks) // (2 * n_query_blocks)


def block_layout(
    pattern: str,
    n_query_blocks: int,
    n_key_blocks: int,
    *,
    window: int,
    stride: int,
    global_blocks: int,
    random_blocks: int,
    seed: int,
) -> Tensor:
    """The bool (nQb, nKb) layout of ``pattern`` (on CPU).

    - ``local``: key blocks ``c(i) - window .. c(i) + window`` (clipped to the sequence).
    - ``strided``: local, plus every ``stride``-th key block (0, stride, 2·stride, ...), which
      gives each query a coarse view of the whole source.
    - ``bigbird``: local, plus the first ``global_blocks`` key blocks, plus ``random_blocks``
      key blocks per query block drawn (without repeats) from those not kept yet; the draw
      is seeded, so a (shape, seed) pair always gives the same layout.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown sparse pattern {pattern!r}; choose one of {PATTERNS}")
    key_block = torch.arange(n_key_blocks)
    centre = aligned_key_blocks(n_query_blocks, n_key_blocks)
    layout = (key_block[None, :] - centre[:, None]).abs() <= window
    if pattern == "strided":
        layout |= (key_block % stride == 0)[None, :]
    elif pattern == "bigbird":
        layout |= (key_block < global_blocks)[None, :]
        layout |= _random_blocks(layout, random_blocks, seed)
    return layout


def _random_blocks(kept: Tensor, count: int, seed: int) -> Tensor:
    """Up to ``count`` seeded random blocks per row among those ``kept`` leaves out."""
    extra = torch.zeros_like(kept)
    count = min(count, kept.shape[1])
    if count == 0:
        return extra
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(kept.shape, generator=generator).masked_fill(kept, 2.0)
    values, picks = noise.topk(count, dim=1, largest=False)
    # Rows with fewer than ``count`` free blocks pick some kept ones (noise 2.0): drop those.
    return extra.scatter(1, picks, values < 1.0)


def query_rows(layout: Tensor, block_size: int, start: int, nq: int) -> Tensor:
    """(Nq, nKb): the layout row of each of the columns ``start … start + Nq − 1``."""
    columns = torch.arange(start, start + nq, device=layout.device)
    return layout[columns // block_size]


def element_mask(layout: Tensor, nq: int, nk: int, block_size: int, start: int = 0) -> Tensor:
    """The (Nq, Nk) bool mask a layout stands for at the columns ``start … start + Nq − 1``:
    query q may read key j iff their blocks are paired. Dense, so only for small inputs
    (heatmaps, tests)."""
    rows = query_rows(layout, block_size, start, nq)
    return rows.repeat_interleave(block_size, dim=1)[:, :nk]
