"""Banded self-attention for long sources: each position sees the positions within
``window`` of it, so the encoder costs O(N·window) instead of O(N²).

The long tier keeps the encoder cheap this way for every backend alike; cross-attention,
the part under test, stays full-length. Queries are cut into blocks of ``window`` rows,
and each block attends to its own block and its two neighbours, so one 4-D SDPA call
covers the band with memory linear in N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def windowed_attention(
    q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, window: int
) -> Tensor:
    """SDPA of (B, H, N, D) ``q, k, v`` restricted to ``|i − j| <= window``.

    ``key_padding_mask`` (B, N) is True on real keys. A position always sees itself, so a
    padded row is never empty (its output is ignored downstream, as with full attention).
    """
    batch, heads, length, dim = q.shape
    blocks = -(-length // window)
    pad = blocks * window - length
    real = (
        torch.ones(batch, length, dtype=torch.bool, device=q.device)
        if key_padding_mask is None
        else key_padding_mask
    )

    def with_neighbours(t: Tensor) -> Tensor:
        """(B, H, N, D) → (B·blocks, H, 3·window, D): each block's keys, one copy."""
        padded = F.pad(t, (0, 0, window, window + pad))
        spans = padded.unfold(2, 3 * window, window)  # (B, H, blocks, D, 3·window), a view
        return spans.permute(0, 2, 1, 4, 3).flatten(0, 1)

    queries = F.pad(q, (0, 0, 0, pad)).view(batch, heads, blocks, window, dim)
    queries = queries.transpose(1, 2).flatten(0, 1)  # (B·blocks, H, window, D)
    keys_real = F.pad(real, (window, window + pad), value=False).unfold(1, 3 * window, window)
    offset = (
        torch.arange(3 * window, device=q.device)[None, :]
        - window
        - torch.arange(window, device=q.device)[:, None]
    )  # key index − query index, (window, 3·window)
    allowed = (offset.abs() <= window) & keys_real[:, :, None, :]  # (B, blocks, window, 3·window)
    allowed = (allowed | (offset == 0)).flatten(0, 1)[:, None]
    out = F.scaled_dot_product_attention(
        queries, with_neighbours(k), with_neighbours(v), attn_mask=allowed
    )
    out = out.view(batch, blocks, heads, window, dim).transpose(1, 2)
    return out.reshape(batch, heads, blocks * window, dim)[:, :, :length]
