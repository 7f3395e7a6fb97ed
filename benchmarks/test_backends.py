"""Each backend × representative cross-attention shapes, forward and forward+backward.

Shapes are (B, H, Nq, Nk, D): a decoder of Nq tokens reading an encoder of Nk = 2·Nq
frames. ``extra_info`` carries the shape, the FLOPs (FlashAttention convention) and what
the backend says ran (``describe()``, e.g. the SDPA kernel or the kept block fraction).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import DEVICE

from xbench.measure.primitives import FLOPS_CONVENTION, attention_flops

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


def input_sets(shape, grad: bool):
    batch, heads, nq, nk, dim = shape
    generator = torch.Generator().manual_seed(0)

    def tensor(n):
        x = torch.randn(batch, heads, n, dim, generator=generator).to(DEVICE, DTYPE)
        return x.requires_grad_(grad)

    return [(tensor(nq), tensor(nk), tensor(nk)) for _ in range(INPUT_SETS)]


def run_benchmark(benchmark, backend, shape, backward: bool):
    sets = input_sets(shape, grad=backward)
    reason = backend.supports(*sets[0], None)
    if reason:
        pytest.skip(f"unsupported: {reason}")  # the backend's own refusal, reported as such
    cycle = itertools.cycle(sets)
    grad_out = torch.randn_like(sets[0][0])

    def call(q, k, v):
        if backward:
            out = backend(q, k, v)
            torch.autograd.grad(out, (q, k, v), grad_out, allow_unused=True)
        else:
            with torch.no_grad():
                out = backend(q, k, v)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)
        return out

    out = call(*sets[0])  # first call: kernel choice / compilation, kept out of the timing
    benchmark.pedantic(
        call, setup=lambda: (next(cycle), {}), rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1
    )
    batch, heads, nq, nk, dim = shape
    benchmark.extra_info.update(
        shape={"batch": batch, "heads": heads, "nq": nq, "nk": nk, "head_dim": dim},
        dtype=str(DTYPE).removeprefix("torch."),
        device=str(DEVICE),
        **{"pass": "fwd+bwd" if backward else "fwd"},
        flops=attention_flops(batch, heads, nq, nk, dim, backward=backward),
        flops_convention=FLOPS_CONVENTION,
        describe=backend.describe(),
    )
    assert out.shape == (batch, heads, nq, dim)


@pytest.mark.parametrize("shape", SHAPES, ids=ids)
def test_forward(benchmark, backend, shape):
    benchmark.group = f"fwd {ids(shape)}"
    run_benchmark(benchmark, backend, shape, backward=False)


@pytest.mark.parametrize("shape", SHAPES[:1], ids=ids)
def test_forward_backward(benchmark, backend, shape):
    benchmark.group = f"fwd+bwd {ids(shape)}"
    run_benchmark(benchmark, backend, shape, backward=True)
