"""Timing one backend at one shape, and the hardware references measured in the same run.

Method (see :mod:`xbench.measure.primitives` for the shared clocks and the memory counter):

- the first call is timed on its own (``cold_ms``): kernel choice, autotuning and
  compilation happen there and never enter the steady-state figures;
- then ``warmup`` untimed calls and ``repeats`` timed ones (CUDA events on GPU,
  ``perf_counter`` at a fixed thread count on CPU), reported as median and IQR;
- every call takes the next of ``rotate`` input sets, so a small shape cannot live in cache
  across calls and look faster than it would in a model;
- memory is one more call under :func:`xbench.measure.primitives.peak_memory_bytes`.

A point that does not fit is ``oom``, one the backend refuses is ``unsupported`` (its
``supports()`` reason), anything else that raises is ``failed``: typed points, never zeros.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from xbench.api.backend import AttentionBackend
from xbench.bench.grid import DTYPES, BenchSettings, Shape
from xbench.measure.primitives import (
    FLOPS_CONVENTION,
    attention_flops,
    is_out_of_memory,
    peak_memory_bytes,
    time_call,
)

MEMORY_METHODS = {
    "cuda": "torch.cuda.max_memory_allocated above the allocation before the call",
    "cpu": "peak live tensor storages allocated by the call (TorchDispatchMode counter)",
}
# Bare SDPA kernels timed as references, fastest-first order is not assumed.
BARE_SDPA_KERNELS = {
    "cuda": {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
    },
    "cpu": {"flash": SDPBackend.FLASH_ATTENTION},
}


class Inputs:
    """``rotate`` sets of (q, k, v), an optional all-real mask, and the output gradient."""

    def __init__(
        self, shape: Shape, device: torch.device, settings: BenchSettings, grad: bool
    ) -> None:
        dtype = DTYPES[shape.dtype]
        generator = torch.Generator(device=device).manual_seed(settings.seed)
        per_set = input_bytes(shape)
        budget = settings.rotate_budget_mb * 2**20
        count = max(1, min(settings.rotate, int(budget // max(per_set, 1))))

        def tensor(n: int) -> torch.Tensor:
            size = (shape.batch, shape.heads, n, shape.head_dim)
            x = torch.randn(size, generator=generator, device=device)  # drawn where it is used
            return x.to(dtype).requires_grad_(grad)

        self.sets = [(tensor(shape.nq), tensor(shape.nk), tensor(shape.nk)) for _ in range(count)]
        self.mask = (
            torch.ones(shape.batch, shape.nk, dtype=torch.bool, device=device)
            if settings.masked
            else None
        )
        self.grad_out = tensor(shape.nq).detach() if grad else None
        self._cycle = itertools.cycle(self.sets)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return next(self._cycle)


def input_bytes(shape: Shape) -> int:
    """Bytes of q, k, v and the output: what any kernel must at least read and write."""
    element = DTYPES[shape.dtype].itemsize
    elements = shape.batch * shape.heads * shape.head_dim * 2 * (shape.nq + shape.nk)
    return elements * element


def make_call(backend: AttentionBackend, inputs: Inputs, backward: bool) -> Callable[[], Any]:
    """One call on the next input set: forward under no_grad, or forward + input gradients."""

    def forward():
        q, k, v = inputs.next()
        with torch.no_grad():
            return backend(q, k, v, key_padding_mask=inputs.mask)

    def forward_backward():
        q, k, v = inputs.next()
        out = backend(q, k, v, key_padding_mask=inputs.mask)
        if not out.requires_grad:
            raise NotDifferentiable("the output does not depend differentiably on q, k, v")
        return torch.autograd.grad(out, (q, k, v), inputs.grad_out, allow_unused=True)

    return forward_backward if backward else forward


class NotDifferentiable(Exception):
    """fwd+bwd asked of a backend whose output has no gradient."""


def measure_point(
    backend: AttentionBackend,
    shape: Shape,
    settings: BenchSettings,
    device: torch.device,
    projected_bytes: int | None = None,
) -> dict[str, Any]:
    """The record of one backend at one shape (status ok | oom | unsupported | failed)."""
    backward = shape.passes == "fwd+bwd"
    record: dict[str, Any] = {"shape": shape.as_dict()}
    cap = settings.memory_cap_gb * 2**30
    if device.type == "cpu" and projected_bytes is not None and projected_bytes > cap:
        return _typed(
            record,
            "oom",
            f"projected peak {projected_bytes / 2**30:.2f} GiB > bench.memory_cap_gb="
            f"{settings.memory_cap_gb:g}",
        )
    try:
        inputs = Inputs(shape, device, settings, grad=backward)
        q, k, v = inputs.sets[0]
        reason = backend.supports(q, k, v, inputs.mask)
        if reason:
            return _typed(record, "unsupported", reason)
        call = make_call(backend, inputs, backward)
        record["cold_ms"] = time_call(call, device, warmup=0, repeats=1)["median"]
        latency = time_call(call, device, settings.warmup, settings.repeats)
        memory = peak_memory_bytes(call, device)
    except NotDifferentiable as error:
        return _typed(record, "unsupported", str(error))
    except Exception as error:  # one failing point is a typed record, the sweep goes on
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if is_out_of_memory(error):
            return _typed(record, "oom", str(error).splitlines()[0][:300])
        reason = f"{type(error).__name__}: {error}"[:500]
        return _typed(record, "failed", reason, detail=traceback.format_exc(limit=-3))
    describe = backend.describe()
    flops = attention_flops(
        shape.batch, shape.heads, shape.nq, shape.nk, shape.head_dim, backward=backward
    )
    seconds = latency["median"] * 1e-3
    record.update(
        status="ok",
        latency_ms=latency,
        flops=flops,
        tflops=flops / seconds / 1e12,
        flops_convention=FLOPS_CONVENTION,
        kept_fraction=describe.get("kept_fraction"),
        memory_bytes=memory,
        memory_method=MEMORY_METHODS[device.type],
        io_bytes=input_bytes(shape),
        input_sets=len(inputs.sets),
        describe=describe,
    )
    return record


def _typed(record: dict, status: str, reason: str, detail: str | None = None) -> dict:
    record.update(status=status, reason=reason)
    if detail is not None:
        record["traceback"] = detail
    return record


def bare_time_ms(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> float:
    """A reference timing with no harness around ``fn``: ``triton.testing.do_bench`` on CUDA
    (median; it flushes L2 between calls), the median of ``perf_counter`` calls on CPU."""
    if device.type == "cuda":
        try:
            from triton.testing import do_bench
        except ImportError:
            pass
        else:
            return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))
    return time_call(fn, device, warmup, repeats)["median"]


def bare_references(
    backends: dict[str, AttentionBackend],
    shape: Shape,
    settings: BenchSettings,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Reference rows at one forward shape: each bare SDPA kernel, and a bare timing of every
    backend's own call (to check the harness's figure against)."""
    inputs = Inputs(shape, device, settings, grad=False)
    q, k, v = inputs.sets[0]
    mask = None if inputs.mask is None else inputs.mask[:, None, None, :]
    flops = attention_flops(shape.batch, shape.heads, shape.nq, shape.nk, shape.head_dim)
    rows = []

    def row(name: str, kind: str, fn: Callable[[], Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"reference": name, "kind": kind, "shape": shape.as_dict()}
        try:
            with torch.no_grad():
                ms = bare_time_ms(fn, device, settings.warmup, settings.repeats)
        except Exception as error:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            status = "oom" if is_out_of_memory(error) else "unsupported"
            return _typed(record, status, str(error).splitlines()[0][:300] if str(error) else "")
        record.update(status="ok", median_ms=ms, tflops=flops / (ms * 1e-3) / 1e12)
        return record

    for name, kernel in BARE_SDPA_KERNELS.get(device.type, {}).items():

        def sdpa(kernel=kernel):
            with sdpa_kernel(kernel):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        rows.append(row(f"sdpa[{name}]", "bare_sdpa", sdpa))
    for name, backend in backends.items():
        rows.append(
            row(name, "bare_backend", lambda b=backend: b(q, k, v, key_padding_mask=inputs.mask))
        )
    return rows


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Achieved TFLOP/s of one large square GEMM: the compute roof of this run."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    ms = time_call(lambda: torch.matmul(a, b), device, warmup=2, repeats=10)["median"]
    return 2 * n**3 / (ms * 1e-3) / 1e12


def copy_bandwidth_gbs(device: torch.device) -> float:
    """GB/s of one large tensor copy (bytes read + written): the memory roof of this run."""
    count = (1 << 30 if device.type == "cuda" else 1 << 28) // 4
    source = torch.randn(count, device=device)
    target = torch.empty_like(source)
    ms = time_call(lambda: target.copy_(source), device, warmup=2, repeats=10)["median"]
    return 2 * source.nbytes / (ms * 1e-3) / 1e9
