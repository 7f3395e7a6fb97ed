"""Measuring the cross-attention op alone: latency and memory at given shapes.

Latency: CUDA events after warm-up on GPU; ``perf_counter`` on CPU (thread count recorded
in the environment); median and interquartile range over repeated calls.

Memory: GPU — allocator peak above the allocation before the call. CPU — there is no
allocator peak to read, so :class:`AllocationCounter` watches every tensor an op returns
(a ``TorchDispatchMode``) and keeps the peak of live bytes of storages allocated inside the
region, counting a storage once however many views share it and freeing it when the last
view dies. Scratch buffers private to a fused C++ kernel are not visible to it, so fused
kernels read as their outputs (which is what they keep alive).
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from xbench.api.backend import AttentionBackend

FLOPS_CONVENTION = "FlashAttention: forward = 4*B*H*Nq*Nk*D, forward+backward = 3.5x forward"
BACKWARD_FLOPS_FACTOR = 3.5  # forward + backward over forward, FlashAttention's convention


class AllocationCounter(TorchDispatchMode):
    """Peak bytes of tensor storages allocated (and still alive) inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._views: dict[int, int] = {}
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            _storage_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                self._track(tensor, inputs)
        return out

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        key = _storage_key(tensor)
        if key in self._views:
            self._views[key] += 1
        elif key in inputs:
            return  # a view or in-place result of memory allocated before the region
        else:
            self._views[key] = 1
            self._sizes[key] = tensor.untyped_storage().nbytes()
            self.live += self._sizes[key]
            self.peak = max(self.peak, self.live)
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        self._views[key] -= 1
        if not self._views[key]:
            del self._views[key]
            self.live -= self._sizes.pop(key)


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes ``fn`` allocates above what was allocated before it (see module doc)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with AllocationCounter() as counter:
        fn()
    return counter.peak


def time_call(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> dict[str, float]:
    """Median and IQR in milliseconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            fn()
            times.append((time.perf_counter() - begin) * 1e3)
    return summarize(times)


def summarize(values: list[float]) -> dict[str, float]:
    """Median and interquartile range (the spread robust to a noisy neighbour)."""
    if len(values) < 2:
        value = values[0] if values else float("nan")
        return {"median": value, "iqr": 0.0, "count": len(values)}
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "iqr": q3 - q1, "count": len(values)}


def attention_flops(
    batch: int, heads: int, nq: int, nk: int, head_dim: int, backward: bool = False
) -> int:
    """FLOPs of one attention call (forward, or forward+backward), FlashAttention convention."""
    forward = 4 * batch * heads * nq * nk * head_dim
    return int(forward * BACKWARD_FLOPS_FACTOR) if backward else forward


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's typed OOM, or the CPU allocator's refusal (a plain RuntimeError)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text
    )


def measure_cross_attention(
    backend: AttentionBackend,
    *,
    batch: int,
    heads: int,
    nq: int,
    nk: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device,
    warmup: int,
    repeats: int,
    seed: int = 0,
) -> dict:
    """Latency, memory and throughput of one forward at the given shape, or why it can't run."""
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def tensor(n: int) -> torch.Tensor:
        return torch.randn(batch, heads, n, head_dim, generator=generator).to(device, dtype)

    q, k, v = tensor(nq), tensor(nk), tensor(nk)
    mask = torch.ones(batch, nk, dtype=torch.bool, device=device)
    shape = {
        "batch": batch,
        "heads": heads,
        "nq": nq,
        "nk": nk,
        "head_dim": head_dim,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
    }
    reason = backend.supports(q, k, v, mask)
    if reason:
        return {"shape": shape, "status": "unsupported", "reason": reason}

    def call():
        with torch.no_grad():
            return backend(q, k, v, key_padding_mask=mask)

    latency = time_call(call, device, warmup, repeats)
    flops = attention_flops(batch, heads, nq, nk, head_dim)
    return {
        "shape": shape,
        "status": "ok",
        "latency_ms": latency,
        "memory_bytes": peak_memory_bytes(call, device),
        "memory_method": "cuda allocator peak"
        if device.type == "cuda"
        else "live tensor storages (TorchDispatchMode)",
        "flops": flops,
        "tflops": flops / (latency["median"] * 1e-3) / 1e12,
        "flops_convention": FLOPS_CONVENTION,
        "describe": backend.describe(),
    }
