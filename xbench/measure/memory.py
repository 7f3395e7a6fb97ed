"""How many bytes a call needs, and the one table that names how they were counted.

GPU: the allocator's peak above what was allocated before the call. CPU: there is no
allocator peak to read, so :class:`AllocationCounter` watches every tensor an op returns
(a ``TorchDispatchMode``) and keeps the peak of live bytes of storages allocated inside the
region, counting a storage once however many views share it and freeing it when the last
view dies. Scratch buffers private to a fused C++ kernel are not visible to it, so fused
kernels read as their outputs (which is what they keep alive).
"""

from __future__ import annotations

import resource
import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from xbench.measure.types import Memory

# Every memory figure xbench writes names one of these methods (Memory.method).
MEMORY_METHODS = {
    "cuda_allocator_peak": "torch.cuda.max_memory_allocated above the allocation before the call",
    "live_tensor_storages": "peak live bytes of tensor storages allocated by the call "
    "(TorchDispatchMode counter; a fused kernel's private scratch is not seen)",
    "cuda_allocator_peak_run": "torch.cuda.max_memory_allocated over the whole run",
    "process_peak_rss": "peak resident set size of the process (ru_maxrss)",
}


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
        inputs = {_storage_key(t) for t in _dense_tensors((args, kwargs))}
        for tensor in _dense_tensors(out):
            if tensor.device.type != "meta":
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


def _dense_tensors(tree) -> list[torch.Tensor]:
    """The tensors of ``tree``, a jagged nested tensor as its packed values (the wrapper
    itself has no storage to count)."""
    tensors = [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]
    return [t.values() if t.is_nested and t.layout == torch.jagged else t for t in tensors]


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


def call_memory(fn: Callable[[], object], device: torch.device) -> Memory:
    """:func:`peak_memory_bytes` of ``fn``, labelled with its method."""
    method = "cuda_allocator_peak" if device.type == "cuda" else "live_tensor_storages"
    return Memory(bytes=peak_memory_bytes(fn, device), method=method)


def run_peak_memory(device: torch.device) -> Memory:
    """The peak of the whole process so far: the CUDA allocator's, or on CPU the peak RSS."""
    if device.type == "cuda":
        return Memory(torch.cuda.max_memory_allocated(device), "cuda_allocator_peak_run")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return Memory(peak, "process_peak_rss")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's typed OOM, or the CPU allocator's refusal (a plain RuntimeError)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text
    )
