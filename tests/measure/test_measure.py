"""Measurement on CPU: the allocation counter against known sizes, summary statistics,
the FLOP convention, and typed results for cases that cannot run."""

from __future__ import annotations

import math

import pytest
import torch

from xbench.measure.primitives import (
    FLOPS_CONVENTION,
    AllocationCounter,
    attention_flops,
    measure_cross_attention,
    peak_memory_bytes,
    summarize,
)
from xbench_plugins.flash import FlashAttention
from xbench_plugins.naive import NaiveAttention

CPU = torch.device("cpu")
N = 1 << 20  # bytes


def test_a_known_allocation_is_counted_exactly():
    assert peak_memory_bytes(lambda: torch.empty(N, dtype=torch.uint8), CPU) == N
    assert peak_memory_bytes(lambda: torch.zeros(N // 4, dtype=torch.float32), CPU) == N
    assert peak_memory_bytes(lambda: torch.ones(8, N // 64, dtype=torch.float64), CPU) == N


@pytest.mark.parametrize(
    ("free_first", "expected"), [(True, N), (False, 2 * N)], ids=["freed-in-between", "both-alive"]
)
def test_freed_tensors_lower_live_bytes(free_first, expected):
    def two_allocations():
        first = torch.empty(N, dtype=torch.uint8)
        if free_first:
            del first
        second = torch.empty(N, dtype=torch.uint8)
        return second

    assert peak_memory_bytes(two_allocations, CPU) == expected


def test_views_share_one_storage_and_free_with_the_last_view():
    with AllocationCounter() as counter:
        base = torch.empty(N, dtype=torch.uint8)
        view = base.view(2, -1)
        other = base[: N // 2]
        assert counter.live == N
        del base, view
        assert counter.live == N  # `other` still holds the storage
        del other
        assert counter.live == 0
    assert counter.peak == N


def test_memory_allocated_before_the_region_is_not_counted():
    outside = torch.zeros(N // 4)

    def touch_outside():
        outside.add_(1.0)
        outside.view(4, -1).mul_(2.0)
        return outside[:10]

    assert peak_memory_bytes(touch_outside, CPU) == 0
    assert outside[0].item() == 2.0


B, H, NQ, NK, D = 2, 4, 256, 512, 64
SCORE_BYTES = B * H * NQ * NK * 4  # naive's (B, H, Nq, Nk) float32 score matrix
OUTPUT_BYTES = B * H * NQ * D * 4


@pytest.fixture(scope="module")
def attention_inputs():
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, NQ, D, generator=generator)
    k = torch.randn(B, H, NK, D, generator=generator)
    v = torch.randn(B, H, NK, D, generator=generator)
    mask = torch.ones(B, NK, dtype=torch.bool)
    mask[1, 300:] = False
    return q, k, v, mask


def attention_peak(backend, inputs) -> int:
    q, k, v, mask = inputs
    with torch.no_grad():
        backend(q, k, v, key_padding_mask=mask)  # warm-up: kernel choice is not measured

        return peak_memory_bytes(lambda: backend(q, k, v, key_padding_mask=mask), CPU)


def test_naive_peak_covers_its_score_matrix(attention_inputs):
    assert attention_peak(NaiveAttention(), attention_inputs) >= SCORE_BYTES + OUTPUT_BYTES


def test_flash_peak_is_far_below_the_score_matrix(attention_inputs):
    peak = attention_peak(FlashAttention(), attention_inputs)

    assert peak >= OUTPUT_BYTES  # it does count the output it returns
    assert peak < SCORE_BYTES / 3


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

    assert summary["median"] == median
    assert summary["count"] == len(values)
    if iqr is not None:
        assert summary["iqr"] == iqr


@pytest.mark.parametrize("values", [[1.0, 2.0], [1.0, 2.0, 3.0], [5.0, 1.0, 9.0, 2.0, 4.0]])
def test_summarize_iqr_lies_within_the_range_of_the_data(values):
    summary = summarize(values)

    assert 0 <= summary["iqr"] <= max(values) - min(values)


def test_summarize_is_shift_invariant_and_scales():
    values = [3.0, 9.0, 1.0, 4.0, 7.0, 2.0, 8.0]
    base = summarize(values)
    moved = summarize([2 * x + 100 for x in values])

    assert moved["median"] == pytest.approx(2 * base["median"] + 100)
    assert moved["iqr"] == pytest.approx(2 * base["iqr"])
    assert base["iqr"] > 0


@pytest.mark.parametrize(("values", "median"), [([4.5], 4.5), ([], None)])
def test_summarize_of_fewer_than_two_values(values, median):
    summary = summarize(values)

    assert summary["iqr"] == 0.0
    assert summary["count"] == len(values)
    if median is None:
        assert math.isnan(summary["median"])
    else:
        assert summary["median"] == median


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 1, 1, 1, 1), 4),
        ((2, 4, 256, 512, 64), 4 * 2 * 4 * 256 * 512 * 64),
        ((8, 8, 100, 300, 80), 4 * 8 * 8 * 100 * 300 * 80),
    ],
)
def test_attention_flops_follows_the_flashattention_convention(shape, expected):
    assert attention_flops(*shape) == expected
    assert "4*B*H*Nq*Nk*D" in FLOPS_CONVENTION


SMALL = {
    "batch": 2,
    "heads": 2,
    "nq": 8,
    "nk": 16,
    "head_dim": 16,
    "dtype": torch.float32,
    "device": CPU,
    "warmup": 1,
    "repeats": 3,
}


def test_measure_naive_is_ok_with_positive_latency():
    report = measure_cross_attention(NaiveAttention(), **SMALL)

    assert report["status"] == "ok"
    assert report["latency_ms"]["median"] > 0
    assert report["latency_ms"]["count"] == 3
    assert report["memory_bytes"] >= 2 * 2 * 8 * 16 * 4
    assert report["flops"] == attention_flops(2, 2, 8, 16, 16)
    assert report["tflops"] > 0
    assert report["flops_convention"] == FLOPS_CONVENTION
    assert report["describe"] == {"kernel": "matmul-softmax-matmul"}
    assert report["shape"]["nk"] == 16 and report["shape"]["dtype"] == "float32"


def test_measure_forced_kernel_that_cannot_run_is_unsupported():
    report = measure_cross_attention(FlashAttention(kernel="efficient"), **SMALL)

    assert report["status"] == "unsupported"
    assert "kernel=efficient" in report["reason"]
    assert "latency_ms" not in report and "memory_bytes" not in report
    assert report["shape"]["head_dim"] == 16
