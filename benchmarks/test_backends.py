"""Each backend × representative cross-attention shapes, forward and forward+backward.

Shapes are (B, H, Nq, Nk, D): a decoder of Nq tokens reading an encoder of Nk = 2·Nq
frames. Inputs, the timed call and the FLOPs come from the measurement primitive that
runs and ``xbench bench`` use (:mod:`xbench.measure`). ``extra_info`` carries the shape,
the FLOPs (FlashAttention convention) and what the backend says ran (``describe()``, e.g.
the SDPA kernel or the kept block fraction).
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE

from xbench.measure.cross_attention import attention_call
from xbench.measure.flops import attention_flops
from xbench.measure.inputs import dtype_name, make_inputs
from xbench.measure.types import AttentionShape

if DEVICE.type == "cuda":
    DTYPE = torch.bfloat16
    SHAPES = [(4, 16, 1024, 2048, 128), (4, 16, 4096, 8192, 128)]
    ROUNDS, WARMUP = 50, 10
else:
    DTYPE = torch.float32
    SHAPES = [(2, 4, 128, 256, 64), (2, 4, 512, 1024, 64)]
    ROUNDS, WARMUP = 10, 2
INPUT_SETS = 3  # rotated so that small shapes don't run from a warm cache


def ids(shape) -> str:
    return "B{}-H{}-Nq{}-Nk{}-D{}".format(*shape)


def attention_shape(shape, passes: str) -> AttentionShape:
    batch, heads, nq, nk, dim = shape
    return AttentionShape(
        batch=batch,
        heads=heads,
        nq=nq,
        nk=nk,
        head_dim=dim,
        dtype=dtype_name(DTYPE),
        device=str(DEVICE),
        passes=passes,
        padded_fraction=None,
    )


def run_benchmark(benchmark, backend, shape, passes: str):
    measured = attention_shape(shape, passes)
    inputs = make_inputs(measured, sets=INPUT_SETS)
    reason = backend.supports(*inputs.sets[0], inputs.mask)
    if reason:
        pytest.skip(f"unsupported: {reason}")  # the backend's own refusal, reported as such
    attend = attention_call(backend, inputs)

    def call():
        out = attend()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)
        return out

    call()  # first call: kernel choice / compilation, kept out of the timing
    out = benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    flops = attention_flops(measured)
    benchmark.extra_info.update(
        shape=measured.to_dict(),
        flops=flops.count,
        flops_convention=flops.convention,
        describe=backend.describe(),
    )
    batch, heads, nq, nk, dim = shape
    if passes == "fwd":
        assert out.shape == (batch, heads, nq, dim)
    else:  # the gradients of q, k and v; every attention output depends on v
        assert out[2].shape == (batch, heads, nk, dim)


@pytest.mark.parametrize("shape", SHAPES, ids=ids)
def test_forward(benchmark, backend, shape):
    benchmark.group = f"fwd {ids(shape)}"
    run_benchmark(benchmark, backend, shape, "fwd")


@pytest.mark.parametrize("shape", SHAPES[:1], ids=ids)
def test_forward_backward(benchmark, backend, shape):
    benchmark.group = f"fwd+bwd {ids(shape)}"
    run_benchmark(benchmark, backend, shape, "fwd+bwd")
