"""One bench point (a backend at a grid shape) through the shared measurement primitive
(:mod:`xbench.measure.cross_attention`: cold call, warm-up, repeats over rotated input
sets, memory), and the references measured in the same run: bare SDPA kernels, a bare
timing of each backend, and the machine's matmul and copy roofs.

A point is ``Measurement.to_dict()`` plus the bench's own fields (``source``, ``tflops``,
``kept_fraction`` and ``kernel`` from ``describe()``, ``io_bytes``, ``bytes_per_second``
(K+V read per second: a decode step's roof), ``source_lengths`` when they were drawn);
one that does not fit is ``oom``
(on CPU also when projected above ``bench.memory_cap_gb``), one the backend refuses is
``unsupported``, anything else that raises is ``failed``: typed points, never zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from xbench.api.backend import AttentionBackend
from xbench.api.errors import first_line
from xbench.bench.grid import BenchSettings, Shape, padded_fraction
from xbench.bench.lengths import drawn_lengths
from xbench.measure.clock import time_call
from xbench.measure.cross_attention import measure_cross_attention
from xbench.measure.flops import attention_flops
from xbench.measure.inputs import input_bytes, lengths_mask, make_inputs
from xbench.measure.memory import is_out_of_memory
from xbench.measure.types import Measurement

# Bare SDPA kernels timed as references, fastest-first order is not assumed.
BARE_SDPA_KERNELS = {
    "cuda": {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
    },
    "cpu": {"flash": SDPBackend.FLASH_ATTENTION},
}


def measure_point(
    backend: AttentionBackend,
    shape: Shape,
    settings: BenchSettings,
    device: torch.device,
    projected_bytes: int | None = None,
) -> dict[str, Any]:
    """The bench.json row of one backend at one shape (status ok | oom | unsupported | failed)."""
    attention = shape.attention(device, padded_fraction(settings))
    lengths = drawn_lengths(settings, shape.batch, shape.nk)
    cap = settings.memory_cap_gb * 2**30
    if device.type == "cpu" and projected_bytes is not None and projected_bytes > cap:
        reason = (
            f"projected peak {projected_bytes / 2**30:.2f} GiB > bench.memory_cap_gb="
            f"{settings.memory_cap_gb:g}"
        )
        measurement = Measurement(attention, status="oom", reason=reason)
    else:
        measurement = measure_cross_attention(
            backend,
            attention,
            warmup=settings.warmup,
            repeats=settings.repeats,
            input_sets=settings.rotate,
            rotate_budget_bytes=settings.rotate_budget_mb * 2**20,
            seed=settings.seed,
            mask=None if lengths is None else lengths_mask(lengths, shape.nk, device),
        )
    point = {**measurement.to_dict(), "source": shape.source}
    if lengths is not None:
        point["source_lengths"] = lengths.tolist()
    if measurement.status == "ok":
        point.update(
            tflops=measurement.tflops,
            kept_fraction=measurement.describe.get("kept_fraction"),
            kernel=kernel_text(measurement.describe),
            io_bytes=input_bytes(attention),
            bytes_per_second=measurement.bytes_per_second,
        )
    return point


def kernel_text(described: dict[str, Any]) -> str | None:
    """``describe()``'s kernel, with its implementation when it names one: what ran."""
    kernel, implementation = described.get("kernel"), described.get("implementation")
    if kernel is None:
        return implementation
    return f"{kernel} / {implementation}" if implementation else kernel


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
    return time_call(fn, device, warmup, repeats).median_ms


def bare_references(
    backends: dict[str, AttentionBackend],
    shape: Shape,
    settings: BenchSettings,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Reference rows at one forward shape: each bare SDPA kernel, and a bare timing of every
    backend's own call (to check the harness's figure against)."""
    attention = shape.attention(device, padded_fraction(settings))
    lengths = drawn_lengths(settings, shape.batch, shape.nk)
    drawn = None if lengths is None else lengths_mask(lengths, shape.nk, device)
    inputs = make_inputs(attention, seed=settings.seed, mask=drawn)
    q, k, v = inputs.sets[0]
    mask = None if inputs.mask is None else inputs.mask[:, None, None, :]
    flops = attention_flops(attention).count
    rows = []

    def row(name: str, kind: str, fn: Callable[[], Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"reference": name, "kind": kind, "shape": attention.to_dict()}
        try:
            with torch.no_grad():
                ms = bare_time_ms(fn, device, settings.warmup, settings.repeats)
        except Exception as error:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            status = "oom" if is_out_of_memory(error) else "unsupported"
            return {**record, "status": status, "reason": first_line(error) or type(error).__name__}
        return {**record, "status": "ok", "median_ms": ms, "tflops": flops / (ms * 1e-3) / 1e12}

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
    ms = time_call(lambda: torch.matmul(a, b), device, warmup=2, repeats=10).median_ms
    return 2 * n**3 / (ms * 1e-3) / 1e12


def copy_bandwidth_gbs(device: torch.device) -> float:
    """GB/s of one large tensor copy (bytes read + written): the memory roof of this run."""
    count = (1 << 30 if device.type == "cuda" else 1 << 28) // 4
    source = torch.randn(count, device=device)
    target = torch.empty_like(source)
    ms = time_call(lambda: target.copy_(source), device, warmup=2, repeats=10).median_ms
    return 2 * source.nbytes / (ms * 1e-3) / 1e9
