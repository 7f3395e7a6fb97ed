"""The FLOP convention: FlashAttention's forward count, 3.5x for forward + backward."""

from __future__ import annotations

import pytest

from xbench.measure.flops import attention_flops
from xbench.measure.types import FLOPS_CONVENTION, AttentionShape, Flops, Latency


def shape(batch, heads, nq, nk, head_dim, passes="fwd") -> AttentionShape:
    return AttentionShape(batch, heads, nq, nk, head_dim, "float32", "cpu", passes)


@pytest.mark.parametrize(
    ("dims", "expected"),
    [
        ((1, 1, 1, 1, 1), 4),
        ((2, 4, 256, 512, 64), 4 * 2 * 4 * 256 * 512 * 64),
        ((8, 8, 100, 300, 80), 4 * 8 * 8 * 100 * 300 * 80),
    ],
)
def test_attention_flops_follows_the_flashattention_convention(dims, expected):
    flops = attention_flops(shape(*dims))

    assert flops.count == expected
    assert flops.convention == FLOPS_CONVENTION and "4*B*H*Nq*Nk*D" in FLOPS_CONVENTION
    assert attention_flops(shape(*dims, passes="fwd+bwd")).count == 3.5 * expected


def test_tflops_divide_the_count_by_the_median():
    assert Flops(4 * 10**12).tflops(Latency(median_ms=500.0, iqr_ms=0.0, count=3)) == 8.0
