"""Memory on CPU: the allocation counter against known sizes, attention peaks against
naive's score matrix, the method table every figure names, and what counts as OOM."""

from __future__ import annotations

import pytest
import torch

from xbench.measure.memory import (
    MEMORY_METHODS,
    AllocationCounter,
    call_memory,
    is_out_of_memory,
    peak_memory_bytes,
    run_peak_memory,
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


def test_call_memory_names_its_method_from_the_one_table():
    memory = call_memory(lambda: torch.empty(N, dtype=torch.uint8), CPU)

    assert memory.bytes == N
    assert memory.method == "live_tensor_storages" and memory.method in MEMORY_METHODS


def test_run_peak_is_the_process_peak_rss_on_cpu():
    before = run_peak_memory(CPU)
    kept = torch.ones(64 * N, dtype=torch.uint8)  # 64 MiB touched: the peak cannot drop
    after = run_peak_memory(CPU)

    assert before.method == after.method == "process_peak_rss" and after.method in MEMORY_METHODS
    assert after.bytes >= max(before.bytes, 64 * N)  # bytes, not ru_maxrss's KiB
    assert kept.sum().item() == 64 * N


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 1 TB"), True),
        (RuntimeError("expected scalar type Float but found Half"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_is_the_typed_error_or_the_cpu_allocators_refusal(error, expected):
    assert is_out_of_memory(error) is expected
