"""Racing interchangeable implementations of one call and keeping the fastest: how a
backend picks a kernel or a route for an input signature (``flash``'s SDPA kernels,
``sparse``'s FlexAttention against its blocks path). Public as ``xbench.pick_fastest``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from xbench.measure.clock import time_call


def pick_fastest(
    candidates: Mapping[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int = 1,
    repeats: int = 5,
) -> tuple[str, dict[str, float]]:
    """Time each candidate (median ms of ``repeats`` calls after ``warmup``, without
    autograd: a race picks an implementation, not a training step) and return the name of
    the fastest with every candidate's median. An error in a candidate propagates."""
    if not candidates:
        raise ValueError("pick_fastest needs at least one candidate")
    with torch.no_grad():
        medians = {
            name: time_call(call, device, warmup, repeats).median_ms
            for name, call in candidates.items()
        }
    return min(medians, key=medians.__getitem__), medians
