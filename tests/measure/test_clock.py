"""The clock: median and IQR of known lists, and timing a call that takes a known time."""

from __future__ import annotations

import time

import pytest
import torch

from xbench.measure.clock import summarize, time_call


@pytest.mark.parametrize(
    ("values", "median", "iqr"),
    [
        ([0, 0, 0, 10, 10, 10], 5, 10),
        ([3, 1, 2], 2, None),
        ([7, 7, 7, 7], 7, 0),
        ([4.0, 1.0, 2.0, 3.0], 2.5, None),
    ],
)
def test_summarize_median_and_iqr_of_known_lists(values, median, iqr):
    summary = summarize(values)

    assert summary.median_ms == median
    assert summary.count == len(values)
    if iqr is not None:
        assert summary.iqr_ms == iqr


@pytest.mark.parametrize("values", [[1.0, 2.0], [1.0, 2.0, 3.0], [5.0, 1.0, 9.0, 2.0, 4.0]])
def test_summarize_iqr_lies_within_the_range_of_the_data(values):
    summary = summarize(values)

    assert 0 <= summary.iqr_ms <= max(values) - min(values)


def test_summarize_is_shift_invariant_and_scales():
    values = [3.0, 9.0, 1.0, 4.0, 7.0, 2.0, 8.0]
    base = summarize(values)
    moved = summarize([2 * x + 100 for x in values])

    assert moved.median_ms == pytest.approx(2 * base.median_ms + 100)
    assert moved.iqr_ms == pytest.approx(2 * base.iqr_ms)
    assert base.iqr_ms > 0


def test_summarize_of_one_value():
    summary = summarize([4.5])

    assert (summary.median_ms, summary.iqr_ms, summary.count) == (4.5, 0.0, 1)


def test_summarize_of_no_values_is_an_error_not_a_nan_latency():
    with pytest.raises(ValueError, match="no timed calls"):
        summarize([])


def test_time_call_counts_only_the_timed_calls_in_milliseconds():
    calls = []

    def sleep():
        calls.append(1)
        time.sleep(0.01)

    latency = time_call(sleep, torch.device("cpu"), warmup=2, repeats=3)

    assert len(calls) == 5 and latency.count == 3
    assert 10.0 <= latency.median_ms < 200.0
    assert latency.cold_ms is None
