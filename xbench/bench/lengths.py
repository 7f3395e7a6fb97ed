"""Ragged source lengths for ``bench.lengths=uniform|lognormal``: each batch item's real
key count drawn from the stated distribution, clipped to ``[min_length, Nk]``, the batch
padded to Nk (real keys first), as a padded batch of real sources is.

- ``uniform``: integers uniform over ``[min_length, Nk]``;
- ``lognormal``: ``round(median·Nk · exp(sigma·z))``, z standard normal
  (``bench.lognormal_median``, ``bench.lognormal_sigma``): most sources short, a long tail.

The draws are seeded by ``bench.seed`` alone, so every backend at a shape sees the same
lengths, and points of one series that differ only in Nk share the same quantiles.
"""

from __future__ import annotations

import torch

from xbench.bench.grid import BenchSettings


def drawn_lengths(settings: BenchSettings, batch: int, nk: int) -> torch.Tensor | None:
    """(batch,) int64 real lengths, or None when ``bench.lengths`` draws none."""
    if not settings.masked or settings.lengths == "fixed":
        return None
    generator = torch.Generator().manual_seed(settings.seed)
    low = min(settings.min_length, nk)
    if settings.lengths == "uniform":
        drawn = low + torch.floor(torch.rand(batch, generator=generator) * (nk - low + 1))
    else:
        z = torch.randn(batch, generator=generator, dtype=torch.float64)
        drawn = torch.round(
            settings.lognormal_median * nk * torch.exp(settings.lognormal_sigma * z)
        )
    return drawn.clamp(low, nk).long()
