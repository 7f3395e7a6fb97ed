"""Wall-clock timing of a call: CUDA events around each call on GPU (so the clock sees the
kernel, not its launch), ``perf_counter`` on CPU (the thread count is recorded in the
environment); summarised as median and interquartile range, the spread that a noisy
neighbour moves least."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from xbench.measure.types import Latency

# A latency whose IQR is above this multiple of its median is flagged noisy.
NOISY_IQR_RATIO = 1.0


def time_call(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> Latency:
    """Median and IQR in milliseconds of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return summarize([_milliseconds(fn, device) for _ in range(repeats)])


def _milliseconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    begin = time.perf_counter()
    fn()
    return (time.perf_counter() - begin) * 1e3


def summarize(values_ms: list[float]) -> Latency:
    """Median and interquartile range of timings in milliseconds (IQR 0 for one value),
    flagged ``noisy`` when the IQR exceeds ``NOISY_IQR_RATIO`` times the median.

    No timings is a ``ValueError``: a latency is never NaN (the measurement that asked is
    then ``failed`` with that reason).
    """
    if not values_ms:
        raise ValueError("no timed calls to summarise")
    if len(values_ms) < 2:
        return Latency(median_ms=values_ms[0], iqr_ms=0.0, count=1)
    q1, _, q3 = statistics.quantiles(values_ms, n=4, method="inclusive")
    median, iqr = statistics.median(values_ms), q3 - q1
    return Latency(
        median_ms=median, iqr_ms=iqr, count=len(values_ms), noisy=iqr > NOISY_IQR_RATIO * median
    )
